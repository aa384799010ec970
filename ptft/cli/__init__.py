"""The `ptft` command line: `main.py` dispatches to one module per command (plan_report, run, status, submit,
eval, analyze, demo/), each generating its options from a pydantic model with `flags.py`."""
