"""The `ptft` command. Each subcommand lives in its own module and is imported only when used,
so `ptft plan` starts fast and never imports Ray or torch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

# name -> (help, "module:function" taking argv, or an argparse-based pair)
_DELEGATED: dict[str, tuple[str, str]] = {
    "eval": ("score a model on eval datasets x formats x shots", "evals.command:eval_main"),
    "analyze": ("transfer/forgetting/format matrices and a report from results", "evals.analysis.command:analyze_main"),
    "run": ("run a grid: train, select, evaluate, analyze (the ray job submit entry point)", "ptft.cli.run:main"),
    "status": ("where a grid stands, from its storage markers", "ptft.grid.status:main"),
    "demo": ("pre-train a tiny model, run a whole study on it locally, write the report", "ptft.cli.demo.command:demo_main"),
}


def _load(target: str) -> Callable[[list[str]], int]:
    import importlib

    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="ptft", description="Pre-training x fine-tuning studies on Ray.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from ptft.cli import plan_report

    plan_parser = sub.add_parser("plan", help="validate a spec and print its plan and cost; launches nothing")
    plan_report.add_arguments(plan_parser)
    for name, (help_text, _) in _DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)

    if argv and argv[0] in _DELEGATED:
        return int(_load(_DELEGATED[argv[0]][1])(argv[1:]) or 0)
    args = parser.parse_args(argv)
    if args.command == "plan":
        return plan_report.run(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
