"""`python -m ptft ...`: the same as the `ptft` command (what `ray job submit` entry points run)."""

import sys

from ptft.cli.main import main

sys.exit(main())
