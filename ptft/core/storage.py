"""Storage helpers: one code path for local folders and object stores (`s3://`, `gs://`).

Writes are atomic: a local write goes to a temp file in the same folder and is renamed into place;
an object-store write is a single PUT, which stores see whole or not at all. Markers are written last
by the callers, so a crash never leaves a result that looks done.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_REMOTE_SCHEMES = ("s3://", "gs://", "gcs://")
_UMASK = os.umask(0)
os.umask(_UMASK)


def is_remote(path: str | os.PathLike) -> bool:
    return str(path).startswith(_REMOTE_SCHEMES)


def join(base: str | os.PathLike, *parts: str) -> str:
    """Join path parts; works for local paths and URIs alike."""
    out = str(base).rstrip("/")
    for part in parts:
        out = f"{out}/{str(part).strip('/')}"
    return out


def _filesystem(path: str):
    import pyarrow.fs as pafs

    fs, inner = pafs.FileSystem.from_uri(path)
    return fs, inner


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = str(path)
    if is_remote(path):
        fs, inner = _filesystem(path)
        with fs.open_output_stream(inner) as out:
            out.write(data)
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows))


def exists(path: str | os.PathLike) -> bool:
    path = str(path)
    if is_remote(path):
        import pyarrow.fs as pafs

        fs, inner = _filesystem(path)
        return fs.get_file_info(inner).type != pafs.FileType.NotFound
    return os.path.exists(path)


def read_bytes(path: str | os.PathLike) -> bytes:
    path = str(path)
    if is_remote(path):
        fs, inner = _filesystem(path)
        with fs.open_input_stream(inner) as f:
            return f.read()
    return Path(path).read_bytes()


def read_text(path: str | os.PathLike) -> str:
    return read_bytes(path).decode("utf-8")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(read_text(path))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [json.loads(line) for line in read_text(path).splitlines() if line.strip()]


def list_dir(path: str | os.PathLike) -> list[str]:
    """Names directly under `path` (empty when it does not exist)."""
    path = str(path)
    if is_remote(path):
        import pyarrow.fs as pafs

        fs, inner = _filesystem(path)
        infos = fs.get_file_info(pafs.FileSelector(inner, allow_not_found=True))
        return sorted(os.path.basename(i.path) for i in infos)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def makedirs(path: str | os.PathLike) -> None:
    if not is_remote(path):
        os.makedirs(str(path), exist_ok=True)


def list_files(uri: str) -> list[tuple[str, int]]:
    """Every file under a directory URI (`s3://`, `gs://`, `file://`, …) as (relative path, size), sorted."""
    import pyarrow.fs as pafs

    fs, inner = pafs.FileSystem.from_uri(uri)
    infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True, allow_not_found=True))
    base = inner.rstrip("/") + "/"
    return sorted((i.path[len(base):], int(i.size)) for i in infos if i.type == pafs.FileType.File)


def download_dir(uri: str, local_dir: str, files: list[tuple[str, int]] | None = None) -> None:
    """Copy a directory URI to `local_dir`, which appears whole (filled beside it, then renamed).

    `files` is its `list_files` listing when the caller already has it.
    """
    import shutil

    import pyarrow.fs as pafs

    fs, inner = pafs.FileSystem.from_uri(uri)
    parent = os.path.dirname(os.path.abspath(local_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-download-", dir=parent)
    try:
        for rel, _ in files if files is not None else list_files(uri):
            target = os.path.join(staging, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with fs.open_input_stream(f"{inner.rstrip('/')}/{rel}") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 24)
        if os.path.exists(local_dir):
            shutil.rmtree(local_dir)
        os.replace(staging, local_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


LISTING_STAMP = ".ptft-listing.json"


def local_copy(uri: str, dest: str) -> str:
    """`dest` as a local copy of the directory URI `uri`, fetched when missing or when the remote listing
    (names and sizes) differs from the one the copy was made from; returns `dest`.

    The copy is filled beside `dest` and renamed into place with its listing stamp, so a reader never
    sees half of it; when several processes fetch at once, the first whole copy stays (the others drop
    theirs). FileNotFoundError when `uri` holds no file."""
    import shutil

    files = list_files(uri)
    if not files:
        raise FileNotFoundError(f"{uri} is empty or does not exist")
    listing = [list(entry) for entry in files]  # as the JSON stamp stores it

    def current() -> bool:
        try:
            with open(os.path.join(dest, LISTING_STAMP)) as f:
                return json.load(f) == listing
        except (OSError, ValueError):
            return False

    if current():
        return dest
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-copy-", dir=parent)
    try:
        download_dir(uri, os.path.join(staging, "copy"), files)
        with open(os.path.join(staging, "copy", LISTING_STAMP), "w") as f:
            json.dump(listing, f)
        if not current():
            if os.path.exists(dest):
                shutil.rmtree(dest)
            os.replace(os.path.join(staging, "copy"), dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def upload_dir(local_dir: str, uri: str) -> None:
    """Copy a local directory to a directory URI (`s3://`, `gs://`, `file://`), file by file (an object
    store writes each one whole); files the destination has but `local_dir` lacks are removed afterwards
    (a checkpoint tag that was pruned)."""
    import shutil

    import pyarrow.fs as pafs

    fs, inner = pafs.FileSystem.from_uri(uri)
    base = inner.rstrip("/")
    wanted = set()
    for root, _, names in os.walk(local_dir):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), local_dir).replace(os.sep, "/")
            wanted.add(rel)
            fs.create_dir(f"{base}/{rel}".rsplit("/", 1)[0], recursive=True)
            with open(os.path.join(root, name), "rb") as src, fs.open_output_stream(f"{base}/{rel}") as dst:
                shutil.copyfileobj(src, dst, length=1 << 24)
    for rel, _ in list_files(uri):
        if rel not in wanted:
            fs.delete_file(f"{base}/{rel}")


def remove(path: str | os.PathLike) -> None:
    """Delete one file (local, or a URI pyarrow reads: `s3://`, `gs://`, `file://`); a missing file is fine."""
    path = str(path)
    if "://" in path:
        import pyarrow.fs as pafs

        fs, inner = pafs.FileSystem.from_uri(path)
        try:
            fs.delete_file(inner)
        except FileNotFoundError:
            pass
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
