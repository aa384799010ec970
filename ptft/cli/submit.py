"""`ptft submit CONFIG`: submit a grid to a Ray cluster as `python -m ptft run CONFIG`, checking first that
the working_dir upload fits Ray's limit and carries the spec; secrets are forwarded by name only.

The Ray work lives in ray_jobs/submit.py (`submit_grid`); this module is the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from ptft.cli.flags import SpecCommandLine
from ray_jobs.submit import DEFAULT_RUNTIME_ENV, submit_grid  # imports no Ray until it submits


class SubmitOptions(BaseModel):
    """`ptft submit`'s own options (the spec and its `--set` edits are the CONFIG argument, passed on to the job)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = Field(
        None, description="Ray dashboard URL; null: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS, else http://127.0.0.1:8265.")
    runtime_env: str = Field(DEFAULT_RUNTIME_ENV, description="runtime_env YAML (working_dir, excludes, env_vars).")
    resume: bool = Field(False, description="Accepted for old scripts: a grid always continues where it stopped.")
    dry_run: bool = Field(False, description="Print the upload, the job and the raw `ray job submit` command; submit nothing.")


EXAMPLES = """examples:
  ptft submit configs/paper.yaml --address http://HEAD:8265 --dry-run    # the upload and the job, no submit
  ptft submit configs/paper.yaml --address http://HEAD:8265 --set storage=s3://my-bucket/ptft
"""


def command_line() -> SpecCommandLine:
    return SpecCommandLine("ptft submit", SubmitOptions, description=__doc__.split("\n\n")[0], epilog=EXAMPLES)


def main(argv: Sequence[str] | None = None) -> int:
    # CONFIG must lie inside the working_dir; --set travels to the job.
    options, args = command_line().parse(argv)
    return submit_grid(args.config, address=options.address, runtime_env_path=options.runtime_env,
                       resume=options.resume, dry_run=options.dry_run, overrides=args.overrides)


if __name__ == "__main__":
    sys.exit(main())
