"""Directories to and from object storage (through pyarrow's file:// filesystem, the same code path as
s3:// and gs://): an upload mirrors the local folder, pruned files included, and a download restores it."""

from __future__ import annotations

from pathlib import Path

from ptft.core import storage


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_upload_mirrors_and_download_restores(tmp_path):
    local = tmp_path / "ckpt"
    (local / "step_2").mkdir(parents=True)
    (local / "step_2" / "state.pt").write_bytes(b"a" * 100)
    (local / "latest").write_text("step_2")
    uri = f"file://{tmp_path / 'bucket' / 'train' / 't1'}"
    storage.upload_dir(str(local), uri)
    assert dict(storage.list_files(uri)) == {"latest": 6, "step_2/state.pt": 100}

    # The next checkpoint replaces the tag locally (only the latest is kept): the upload prunes the old one.
    (local / "step_2" / "state.pt").unlink()
    (local / "step_2").rmdir()
    (local / "step_4").mkdir()
    (local / "step_4" / "state.pt").write_bytes(b"b" * 50)
    (local / "latest").write_text("step_4")
    storage.upload_dir(str(local), uri)
    assert dict(storage.list_files(uri)) == {"latest": 6, "step_4/state.pt": 50}

    restored = tmp_path / "restored"
    storage.download_dir(uri, str(restored))
    assert _tree(restored) == _tree(local)


def test_remove_is_quiet_about_missing_files(tmp_path):
    path = tmp_path / "LEASE.json"
    path.write_text("{}")
    storage.remove(str(path))
    storage.remove(str(path))
    assert not path.exists()
    (tmp_path / "remote.json").write_text("{}")
    uri = f"file://{tmp_path / 'remote.json'}"
    storage.remove(uri)
    storage.remove(uri)
    assert not (tmp_path / "remote.json").exists()
