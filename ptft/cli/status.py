"""`ptft status CONFIG`: where a grid stands, read from its storage markers (nothing else)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ptft.cli.flags import add_spec_arguments


def main(argv: Sequence[str] | None = None) -> int:
    from ptft.grid.status import print_status
    from ptft.study.plan import build_plan
    from ptft.study.spec import load_spec_or_report

    parser = argparse.ArgumentParser(prog="ptft status", description=__doc__.splitlines()[0])
    add_spec_arguments(parser)
    args = parser.parse_args(argv)
    spec = load_spec_or_report(args.config, args.overrides)
    if spec is None:
        return 2
    print_status(build_plan(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
