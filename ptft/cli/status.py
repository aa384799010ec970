"""`ptft status CONFIG`: where a grid stands, read from its storage markers (nothing else)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ptft.cli.flags import SpecCommandLine

EXAMPLES = """examples:
  ptft status configs/smoke.yaml
  ptft status configs/paper.yaml --set storage=s3://my-bucket/ptft
"""


def command_line() -> SpecCommandLine:
    return SpecCommandLine("ptft status", description=__doc__.splitlines()[0], epilog=EXAMPLES)


def main(argv: Sequence[str] | None = None) -> int:
    from ptft.grid.status import print_status

    _, plan = command_line().parse_plan(argv)
    if plan is None:
        return 2
    print_status(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
