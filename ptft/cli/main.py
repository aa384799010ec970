"""The `ptft` command. Each subcommand lives in its own module under ptft/cli/ and is imported only when
used, so `ptft plan` starts fast and never imports Ray or torch.

Every subcommand module has `main(argv) -> int`; its options are generated from a pydantic model by
`ptft.cli.flags` (one style: see that module's docstring).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ptft.core.packages import PackageClashError, check_own_packages

# name -> (help, module with main(argv) -> int)
COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("validate a spec and print its plan and cost; launches nothing", "ptft.cli.plan_report"),
    "run": ("run a grid: train, select, evaluate, analyze (the ray job submit entry point)", "ptft.cli.run"),
    "status": ("where a grid stands, from its storage markers", "ptft.cli.status"),
    "submit": ("submit a grid to a Ray cluster, checking the upload first", "ptft.cli.submit"),
    "eval": ("score a model on eval datasets x formats x shots", "ptft.cli.eval"),
    "analyze": ("transfer/forgetting/format matrices and a report from results", "ptft.cli.analyze"),
    "demo": ("pre-train a tiny model, run a whole study on it locally, write the report", "ptft.cli.demo.command"),
    "init": ("scaffold an experiment spec for a model and its pre-training steps", "ptft.cli.init"),
    "report": ("print (or open) a grid's report.html", "ptft.cli.report"),
    "env": ("versions of ptft and what it runs on, for a bug report", "ptft.cli.env"),
    "tasks": ("list every task (built-in and declared); `tasks show NAME` renders one example", "ptft.cli.tasks"),
}


EXAMPLES = """examples:
  ptft demo --quick                      # a whole study on a tiny model, on this CPU, in minutes
  ptft init allenai/OLMo-1B-hf --steps 1000,18000 --out configs/olmo.yaml
  ptft plan configs/olmo.yaml            # cells, trials, eval jobs and the cost; launches nothing
  ptft run configs/olmo.yaml             # or: ptft submit configs/olmo.yaml --address URL
  ptft report runs/OLMo-1B-hf --open     # the storage `ptft init` chose
Each command's --help has its own examples.
"""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        check_own_packages()
    except PackageClashError as err:
        print(f"ptft: error: {err}", file=sys.stderr)
        return 2
    if argv and argv[0] in COMMANDS:
        return int(importlib.import_module(COMMANDS[argv[0]][1]).main(argv[1:]) or 0)
    if argv[:1] in (["--version"], ["-V"]):  # argparse's version action would read git on every `ptft`
        from ptft.cli.env import version_line

        print(version_line())
        return 0
    parser = argparse.ArgumentParser(prog="ptft", description="Pre-training x fine-tuning studies on Ray.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-V", "--version", action="store_true", help="print ptft's version and git commit, and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, _) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    parser.parse_args(argv)  # --help, or an unknown command: argparse says so and exits 2
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
