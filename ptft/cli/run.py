"""`ptft run CONFIG`: run a grid on Ray (train, select, evaluate, analyze); what `ray job submit` runs.

Every stage starts from the ledger, so re-running the same command continues where it stopped.
"""

from __future__ import annotations

import argparse
import sys

from ptft.core import storage
from ptft.study.checkpoints import CheckpointResolutionError
from ptft.study.plan import build_plan
from ptft.study.spec import load_spec_or_report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ptft run", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="experiment spec (YAML)")
    parser.add_argument("--resume", action="store_true",
                        help="continue a grid (the default behaviour: finished work is always skipped)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the ledger; launch nothing")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec field, e.g. --set train.epochs=1")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = load_spec_or_report(args.config, args.overrides)
    if spec is None:
        return 2
    plan = build_plan(spec)
    if args.dry_run:
        from ptft.cli.plan_report import print_plan
        from ptft.grid.status import print_status
        from ptft.study.estimate import estimate_plan

        print_plan(plan, estimate_plan(plan))
        print_status(plan)
        return 0
    try:
        from ray_jobs.grid import run_grid

        report = run_grid(plan)
    except CheckpointResolutionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"[ptft] trials run {report.trials_run}, failed {len(report.trials_failed)}; eval jobs run "
         f"{report.eval_jobs_run} on {report.eval_models_run} models; "
         + ", ".join(f"{k} {v:.0f}s" for k, v in report.seconds.items()))
    if report.analysis_dir:
        print(f"[ptft] report: {storage.join(report.analysis_dir, 'report.html')}")
    if report.trials_failed:
        print(report.failure_message(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
