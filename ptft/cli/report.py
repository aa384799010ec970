"""`ptft report STORAGE`: print the path of a grid's `analysis/report.html` (`--open`: open it in a browser).

STORAGE is a grid's storage root (the spec's `storage`), its `analysis/` folder, or the `--out` folder of
`ptft analyze`. Exit status: 0 found, 1 no report there yet, 2 bad arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from ptft.cli.flags import CommandLine

REPORT = "report.html"
EXAMPLES = """examples:
  ptft report runs/smoke                 # the storage of configs/smoke.yaml
  ptft report runs/demo/grid --open      # what `ptft demo` wrote, in the default browser
"""


class ReportOptions(BaseModel):
    """`ptft report`'s options (STORAGE is its argument)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    open: bool = Field(False, description="Open the report in the default web browser (a local report only).")


def command_line() -> CommandLine:
    cli = CommandLine("ptft report", ReportOptions, description=__doc__, epilog=EXAMPLES)
    cli.parser.add_argument("storage", metavar="STORAGE",
                            help="a grid's storage root, its analysis/ folder, or a `ptft analyze --out` folder")
    return cli


def find_report(where: str) -> str | None:
    """The report under `where` (the folder itself, then its `analysis/`), or None."""
    from ptft.core import storage
    from ptft.core.layout import GridLayout

    for candidate in (storage.join(where, REPORT), storage.join(GridLayout(where).analysis_dir, REPORT)):
        if storage.exists(candidate):
            return candidate
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from ptft.core import storage

    options, args = command_line().parse(argv)
    where = args.storage.rstrip("/") or args.storage
    report = find_report(where)
    if report is None:
        print(f"ptft report: error: no {REPORT} in {where} or {storage.join(where, 'analysis')}: a grid writes "
              f"it when it ends (ptft run SPEC), or write one with: ptft analyze --storage {where} "
              f"--out {storage.join(where, 'analysis')}", file=sys.stderr)
        return 1
    if not storage.is_remote(report):
        import os

        report = os.path.abspath(report)
    print(report)
    if options.open:
        if storage.is_remote(report):
            print("ptft report: error: a report in object storage cannot be opened here; copy it first",
                  file=sys.stderr)
            return 1
        import webbrowser
        from pathlib import Path

        webbrowser.open(Path(report).as_uri())
    return 0


if __name__ == "__main__":
    sys.exit(main())
