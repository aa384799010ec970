"""Submit a grid to a Ray cluster, checking the upload before Ray does (the work behind `ptft submit`).

    ptft submit CONFIG [--address URL] [--runtime-env cluster/runtime_env.yaml]
                       [--resume] [--set KEY=VALUE ...] [--dry-run]

`ray job submit` zips the working_dir and PUTs it to the dashboard, which refuses bodies over 100 MiB
with an opaque error (ray#45602). This computes the upload set with Ray's own packaging helpers, reached
through `ray_jobs/ray_upload.py`, the one adapter over `ray._private` (its default excludes, the
runtime_env's `excludes`, every .gitignore/.rayignore, the same zip), prints the size and the biggest
paths, and refuses above the limit, naming what to exclude. Secrets are passed by
NAME: WANDB_API_KEY and HF_TOKEN are copied from this environment into the job's env_vars at submit
time and are never printed or written anywhere. `--dry-run` prints the plan and the equivalent raw
`ray job submit` command, and submits nothing. Errors go to stderr; bad input exits 2, a failed
submission 1.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ptft.core.yaml_files import YamlError, read_yaml
from ray_jobs import ray_upload

SECRET_ENV_VARS = ("WANDB_API_KEY", "HF_TOKEN")
DEFAULT_RUNTIME_ENV = "cluster/runtime_env.yaml"
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
ENTRYPOINT = ("python", "-m", "ptft", "run")
_MIB = 1024**2
# Ray logs per-file warnings while zipping; this report replaces them.
_QUIET = logging.getLogger("ray_jobs.submit.packaging")
_QUIET.setLevel(logging.ERROR)


def _mib(num_bytes: int) -> str:
    return f"{num_bytes / _MIB:.1f} MiB"


class SubmitError(ValueError):
    """Input that cannot be submitted (a bad runtime_env, a config the upload would not carry)."""


def upload_limit() -> int:
    """Bytes Ray accepts for one working_dir package through `ray job submit` (see ray_upload)."""
    return ray_upload.upload_limit()


def ray_excludes(runtime_env: Mapping) -> list[str]:
    """The patterns Ray applies to a working_dir: its defaults first, then the runtime_env's."""
    return ray_upload.default_excludes() + list(runtime_env.get("excludes") or [])


@dataclass(frozen=True)
class UploadSet:
    """What Ray would upload for one working_dir."""

    root: Path
    files: dict[str, int]  # posix path relative to root -> bytes (empty directories: 0)
    package_bytes: int  # size of the zip Ray builds (file bytes + zip headers)
    limit: int

    @property
    def too_big(self) -> bool:
        return self.package_bytes >= self.limit


def compute_upload_set(working_dir: str | Path, excludes: list[str], limit: int | None = None) -> UploadSet:
    """Walk `working_dir` exactly as Ray's packager does and measure the zip it would send."""
    root = Path(working_dir).absolute()
    include_gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"  # Ray's switch
    files: dict[str, int] = {}

    def record(path: Path) -> None:
        # Ray's zip handler packs files and empty directories; nothing else becomes an entry.
        if path.is_file() or (path.is_dir() and next(path.iterdir(), None) is None):
            files[path.relative_to(root).as_posix()] = path.stat().st_size if path.is_file() else 0

    ray_upload.walk(root, excludes, record, include_gitignore=include_gitignore, logger=_QUIET)
    limit = upload_limit() if limit is None else limit
    raw = sum(files.values())
    if raw >= limit:
        # Ray zips with ZIP_STORED (no compression): the package is at least the raw bytes; don't
        # spend minutes zipping gigabytes only to refuse them.
        return UploadSet(root, files, raw, limit)
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "working_dir.zip"
        ray_upload.create_package(root, package, excludes, include_gitignore=include_gitignore, logger=_QUIET)
        return UploadSet(root, files, package.stat().st_size, limit)


def _tree_sizes(files: Mapping[str, int]) -> dict[str, int]:
    """Bytes under every file and directory (directories keyed with a trailing '/')."""
    sizes: dict[str, int] = defaultdict(int)
    for rel, size in files.items():
        parts = rel.split("/")
        for i in range(1, len(parts)):
            sizes["/".join(parts[:i]) + "/"] += size
        sizes[rel] += size
    return sizes


def _children(sizes: Mapping[str, int], parent: str) -> list[str]:
    return [k for k in sizes if k.startswith(parent) and k != parent and "/" not in k[len(parent):].rstrip("/")]


def biggest_paths(upload: UploadSet, n: int = 8) -> list[tuple[str, int]]:
    """The largest top-level entries of the upload, biggest first."""
    sizes = _tree_sizes(upload.files)
    return sorted(((k, sizes[k]) for k in _children(sizes, "")), key=lambda kv: -kv[1])[:n]


def suggest_excludes(upload: UploadSet, max_items: int = 10) -> list[tuple[str, int]]:
    """Paths whose exclusion brings the package under the limit, biggest first.

    Descends into a directory while a single child holds most of it, so the suggestion is
    `ptft/tasks/mini/data/huge/` rather than the whole `ptft/tasks/` package.
    """
    files = dict(upload.files)
    overhead = upload.package_bytes - sum(files.values())  # zip headers
    chosen: list[tuple[str, int]] = []
    while files and sum(files.values()) + overhead >= upload.limit and len(chosen) < max_items:
        sizes = _tree_sizes(files)
        key = max(_children(sizes, ""), key=sizes.__getitem__)
        while key.endswith("/"):
            top = max(_children(sizes, key), key=sizes.__getitem__)
            if sizes[top] < 0.8 * sizes[key]:
                break
            key = top
        chosen.append((key, sizes[key]))
        files = {p: s for p, s in files.items() if p != key and not (key.endswith("/") and p.startswith(key))}
    return chosen


def load_runtime_env(path: str | Path) -> dict:
    """Read a runtime_env YAML; refuse one that writes a secret's value into a file."""
    try:
        runtime_env = read_yaml(str(path)) or {}
    except FileNotFoundError:
        raise SubmitError(f"runtime_env {path} not found") from None
    except YamlError as err:
        raise SubmitError(f"runtime_env {err}") from None
    if not isinstance(runtime_env, dict):
        raise SubmitError(f"{path}: a runtime_env must be a mapping")
    named = sorted(set(runtime_env.get("env_vars") or {}) & set(SECRET_ENV_VARS))
    if named:
        raise SubmitError(f"{path} sets {', '.join(named)} in env_vars: secrets are forwarded from "
                          "your environment by name at submit time, never written in a file; remove them")
    return runtime_env


def _with_env(runtime_env: Mapping, extra: Mapping[str, str]) -> dict:
    out = json.loads(json.dumps(runtime_env))  # a deep copy; the caller's dict stays as read
    out["env_vars"] = {**(out.get("env_vars") or {}), **extra}
    return out


def with_secrets(runtime_env: Mapping, environ: Mapping[str, str]) -> tuple[dict, list[str]]:
    """A copy of `runtime_env` whose env_vars also carry the secrets set in `environ`, and their names."""
    names = [n for n in SECRET_ENV_VARS if environ.get(n)]
    return _with_env(runtime_env, {n: environ[n] for n in names}), names


def _placeholders(runtime_env: Mapping, names: list[str]) -> dict:
    return _with_env(runtime_env, {n: f"@@{n}@@" for n in names})


def raw_command(address: str, runtime_env: Mapping, names: list[str], entrypoint: str) -> str:
    """The equivalent `ray job submit` line; secrets expand from the shell, their values never appear."""
    quoted = shlex.quote(json.dumps(_placeholders(runtime_env, names)))
    for name in names:  # close the single quote, splice "$NAME", reopen
        quoted = quoted.replace(f"@@{name}@@", f"'\"${name}\"'")
    return f"ray job submit --no-wait --address {shlex.quote(address)} --runtime-env-json {quoted} -- {entrypoint}"


def _scrub(text: str, environ: Mapping[str, str]) -> str:
    """Remove secret values from text we did not write (an error echoing the runtime_env)."""
    for name in (*SECRET_ENV_VARS, "RAY_AUTH_TOKEN"):
        if environ.get(name):
            text = text.replace(environ[name], f"<${name}>")
    return text


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def submit_grid(config: str, *, runtime_env_path: str, address: str | None = None, resume: bool = False,
                dry_run: bool = False, overrides: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> int:
    """Check the upload, then submit `ptft run CONFIG` as a Ray job; returns the exit status
    (0 submitted or dry run, 1 the submission or Ray's helpers failed, 2 bad input)."""
    environ = os.environ if environ is None else environ
    address = address or environ.get("RAY_API_SERVER_ADDRESS") or environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS
    try:
        runtime_env = load_runtime_env(runtime_env_path)
    except SubmitError as err:
        _error(str(err))
        return 2
    working_dir = str(runtime_env.setdefault("working_dir", "."))
    if "://" in working_dir:
        _error(f"working_dir {working_dir} is a remote package; this command uploads a local tree")
        return 2
    root, config_path = Path(working_dir).absolute(), Path(config).absolute()
    if not config_path.is_file():
        _error(f"config {config} not found")
        return 2
    try:
        config_rel = config_path.relative_to(root).as_posix()
    except ValueError:
        _error(f"config {config} is outside the working_dir {root}; the job only sees the upload")
        return 2

    try:
        upload = compute_upload_set(root, ray_excludes(runtime_env))
    except ray_upload.RayInternalsMoved as err:
        _error(str(err))
        return 1
    print(f"upload: {root} -> {len(upload.files)} files, package {_mib(upload.package_bytes)} "
          f"(limit {_mib(upload.limit)}; excludes from {runtime_env_path}, Ray's defaults, .gitignore/.rayignore)")
    for path, size in biggest_paths(upload):
        print(f"  {_mib(size):>11}  {path}")
    if upload.too_big:
        _error(f"the working_dir package ({_mib(upload.package_bytes)}) is over Ray's upload limit "
               f"({_mib(upload.limit)}); `ray job submit` would fail (ray#45602). Exclude these paths "
               f"(add them to `excludes:` in {runtime_env_path}, or to .rayignore):")
        for path, size in suggest_excludes(upload):
            print(f"  - /{path}    # {_mib(size)}", file=sys.stderr)
        return 2
    if config_rel not in upload.files:
        _error(f"{config_rel} is excluded from the upload; the job could not read it")
        return 2

    grid_args = [*(["--resume"] if resume else []), *(a for kv in overrides for a in ("--set", kv))]
    entrypoint = shlex.join([*ENTRYPOINT, config_rel, *grid_args])
    to_send, names = with_secrets(runtime_env, environ)
    missing = [n for n in SECRET_ENV_VARS if n not in names]
    print(f"address:    {address}")
    print(f"entrypoint: {entrypoint}")
    print(f"secrets:    forwarded by name: {', '.join(names) or 'none'}"
          + (f"; not set here: {', '.join(missing)}" if missing else ""))
    print("runtime_env: " + json.dumps(_placeholders(runtime_env, names)).replace('"@@', '"<from $').replace('@@"', '>"'))
    if dry_run:
        print("dry run: nothing submitted. Equivalent raw command (token auth: export RAY_AUTH_MODE=token):")
        print("  " + raw_command(address, runtime_env, names, entrypoint))
        return 0

    try:
        from ray.job_submission import JobSubmissionClient

        job_id = JobSubmissionClient(address).submit_job(entrypoint=entrypoint, runtime_env=to_send)
    except Exception as e:  # any failure is reported, scrubbed of secret values
        _error(f"submission failed: {_scrub(f'{type(e).__name__}: {e}', environ)}")
        if "uthentication" in str(e):
            print("hint: the cluster uses token auth: export RAY_AUTH_MODE=token and put the cluster's token "
                  "in ~/.ray/auth_token or $RAY_AUTH_TOKEN (docs/cluster.md)", file=sys.stderr)
        return 1
    print(f"submitted: {job_id}\n  follow:  ray job logs --follow --address {address} {job_id}\n"
          f"  status:  ray job status --address {address} {job_id}\n"
          "  resume:  re-run this same command; finished trials and evals are skipped")
    return 0
