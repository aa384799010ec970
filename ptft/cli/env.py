"""`ptft env`: the versions a bug report needs (ptft and its git commit, python, torch and CUDA, Ray,
DeepSpeed, transformers, peft, datasets, wandb, the platform); `ptft --version` prints the first line."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ptft.cli.flags import CommandLine

# Read from the installed distributions' metadata, so `ptft env` imports none of them (but torch, for CUDA).
PACKAGES = ("ray", "deepspeed", "transformers", "peft", "datasets", "wandb", "accelerate", "pydantic", "numpy")
EXAMPLES = """examples:
  ptft env                 # paste its output into a bug report
  ptft env --json
  ptft --version
"""


class EnvOptions(BaseModel):
    """`ptft env`'s options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_json: bool = Field(False, description="Print one JSON object instead of aligned lines.")


def git_commit() -> str | None:
    """The commit of the checkout ptft runs from (`+dirty` with uncommitted changes); None for an installed wheel."""
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        return None
    try:
        run = {"capture_output": True, "text": True, "timeout": 10, "check": True}
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               **run).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if sha and dirty else (sha or None)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def version_line() -> str:
    """`ptft 0.1.0 (git 1a2b3c4d5e6f)`: what `ptft --version` prints."""
    commit = git_commit()
    return f"ptft {_version('ptft')}" + (f" (git {commit})" if commit else "")


def _torch() -> str:
    try:
        import torch
    except ImportError:
        return "not installed"
    cuda = torch.version.cuda
    devices = torch.cuda.device_count() if cuda and torch.cuda.is_available() else 0
    where = f"cuda {cuda}, {devices} GPU(s) visible" if cuda else "CPU build"
    return f"{torch.__version__} ({where})"


def versions() -> dict[str, str]:
    """Name -> version text, in the order a bug report reads them."""
    commit = git_commit()
    out = {"ptft": _version("ptft") + (f" (git {commit})" if commit else " (no git checkout)"),
           "python": f"{platform.python_version()} ({sys.executable})",
           "platform": platform.platform(),
           "torch": _torch()}
    out.update({name: _version(name) for name in PACKAGES})
    return out


def command_line() -> CommandLine:
    return CommandLine("ptft env", EnvOptions, description=__doc__, epilog=EXAMPLES, rename={"as_json": "--json"})


def main(argv: Sequence[str] | None = None) -> int:
    options, _ = command_line().parse(argv)
    found = versions()
    if options.as_json:
        print(json.dumps(found, indent=2))
    else:
        width = max(map(len, found))
        for name, version in found.items():
            print(f"{name:<{width}}  {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
