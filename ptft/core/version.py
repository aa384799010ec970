"""Which code produced a result: ptft's version and the git commit of the source tree it runs from."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the source tree (with "+dirty" for uncommitted changes to tracked files), or None
    outside a git checkout (an installed wheel)."""
    repo = path or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if sha and dirty else (sha or None)


def code_version(version: str) -> str:
    """A release `version` (ptft's `__version__`) plus the commit when there is one: `0.1.0+g<sha>`."""
    sha = git_commit()
    return f"{version}+g{sha}" if sha else version
