"""`ptft run CONFIG`: run a grid on Ray (train, select, evaluate, analyze); what `ray job submit` runs.

Every stage starts from the ledger, so re-running the same command continues where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from ptft.cli.flags import SpecCommandLine
from ptft.core import storage
from ptft.core.wandb_settings import WandbModeError
from ptft.grid.lease import GridBusyError
from ptft.grid.ledger import StorageVersionError
from ptft.study.checkpoints import CheckpointResolutionError
from ptft.study.preflight import PreflightError
from ptft.tasks.errors import DataError


class RunOptions(BaseModel):
    """`ptft run`'s own options (the spec and its `--set` edits are the CONFIG argument)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dry_run: bool = Field(False, description="Print the plan and the ledger; launch nothing.")
    verbose: bool = Field(False, description="Show the libraries' output (Ray workers, Tune, DeepSpeed) on the "
                          "console too; otherwise it goes to <storage>/logs/<run>/.")


EXAMPLES = """examples:
  ptft run configs/smoke.yaml                    # rerun the same command to continue where it stopped
  ptft run configs/smoke.yaml --dry-run          # the plan and what is already done; launches nothing
  ptft run configs/paper.yaml --set storage=s3://my-bucket/ptft --verbose
"""


def command_line() -> SpecCommandLine:
    cli = SpecCommandLine("ptft run", RunOptions, description=__doc__.splitlines()[0], epilog=EXAMPLES)
    # `ptft submit --resume` and older scripts pass --resume; a grid always continues, so it is accepted
    # and not shown (ray_jobs/submit.py still forwards it).
    cli.parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    options, plan = command_line().parse_plan(argv)
    if plan is None:
        return 2
    if options.dry_run:
        from ptft.study.preflight import preflight

        try:
            preflight(plan, about_to_run=False)
        except (CheckpointResolutionError, DataError, PreflightError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        from ptft.cli.plan_report import print_plan
        from ptft.grid.status import print_status
        from ptft.study.estimate import estimate_plan

        print_plan(plan, estimate_plan(plan))
        print_status(plan)
        return 0
    from ray_jobs.grid import ResourcesError, run_grid

    try:
        report = run_grid(plan, verbose=options.verbose)
    except (CheckpointResolutionError, DataError, PreflightError, StorageVersionError, WandbModeError, GridBusyError,
            ResourcesError) as err:  # all before any Ray resource is asked for
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
