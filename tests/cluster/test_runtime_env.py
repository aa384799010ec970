"""cluster/runtime_env.yaml's excludes, applied by Ray's own packaging helpers, upload code only."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ray._private.runtime_env import packaging
from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

from ray_jobs.submit import compute_upload_set, load_runtime_env, ray_excludes

from .conftest import KEPT, MIB, REPO, RUNTIME_ENV

EXCLUDES = ray_excludes(load_runtime_env(RUNTIME_ENV))


def test_excludes_keep_code_and_drop_outputs_caches_and_vcs(fake_repo: Path):
    upload = compute_upload_set(fake_repo, EXCLUDES)
    assert set(upload.files) == KEPT
    assert not upload.too_big and upload.package_bytes < MIB  # the 12 MiB file under runs/ stayed home


def test_upload_set_is_exactly_rays_zip(fake_repo: Path, tmp_path: Path):
    upload = compute_upload_set(fake_repo, EXCLUDES)
    package = tmp_path / "pkg.zip"
    packaging.create_package(str(fake_repo), package, include_gitignore=True, excludes=EXCLUDES)
    with zipfile.ZipFile(package) as zf:
        names = {n.rstrip("/") for n in zf.namelist()}
    assert names == set(upload.files)
    assert upload.package_bytes == package.stat().st_size


def test_gitignore_switch_is_rays(fake_repo: Path, monkeypatch):
    monkeypatch.setenv("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "1")
    files = set(compute_upload_set(fake_repo, EXCLUDES).files)
    assert {"notes.local", "evals/scratch/big.tmp"} <= files


def test_excludes_are_the_ones_ray_applies(fake_repo: Path):
    runtime_env = load_runtime_env(RUNTIME_ENV)
    seen: dict = {}

    def capture(working_dir, excludes=None, is_file=False):
        seen["excludes"] = excludes

    upload_working_dir_if_needed({**runtime_env, "working_dir": str(fake_repo)}, include_gitignore=True,
                                 upload_fn=capture)
    assert seen["excludes"] == ray_excludes(runtime_env)


def test_this_repository_fits():
    upload = compute_upload_set(REPO, EXCLUDES)
    assert not upload.too_big, upload.package_bytes
    assert "configs/paper.yaml" in upload.files and "ray_jobs/submit.py" in upload.files
    assert not any(p.startswith((".git/", ".venv/")) for p in upload.files)
