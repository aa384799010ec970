"""`ptft submit` (ptft/cli/submit.py over ray_jobs/submit.py): refuses oversized uploads by name,
forwards secrets by name only, and says which Ray moved its private helpers."""

from __future__ import annotations

import builtins
import json
import re
import subprocess
from pathlib import Path

import pytest
import ray
import ray.job_submission
from ray._private.runtime_env import packaging

from ptft.cli.main import main as ptft_main
from ray_jobs import ray_upload, submit

from .conftest import MIB, RUNTIME_ENV, write

FAKE = {"WANDB_API_KEY": "wandb-fake-0123456789abcdef", "HF_TOKEN": "hf_fakeTOKENvalue987654321"}


@pytest.fixture
def repo(fake_repo: Path, monkeypatch) -> Path:
    monkeypatch.chdir(fake_repo)
    for name in (*submit.SECRET_ENV_VARS, "RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return fake_repo


def _run(capsys, *argv: str) -> tuple[int, str]:
    rc = ptft_main(["submit", "configs/paper.yaml", "--runtime-env", str(RUNTIME_ENV), *argv])
    out = capsys.readouterr()
    return rc, out.out + out.err


def _files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_refuses_an_oversized_working_dir_naming_the_biggest_paths(repo: Path, capsys):
    with open(write(repo / "assets/big/weights.npy", b""), "wb") as f:
        f.truncate(150 * MIB)  # sparse: 150 MiB on paper, nothing on disk
    write(repo / "assets/readme.txt", "small")
    rc, out = _run(capsys, "--dry-run")
    assert rc == 2
    assert "over Ray's upload limit" in out and "ray#45602" in out
    assert "- /assets/big/weights.npy" in out  # drilled down to the culprit, not all of assets/
    assert "assets/" in out.split("error:")[0]  # listed among the biggest entries


def test_suggestions_descend_into_a_dominant_directory():
    files = {"ptft/tasks/mini/data/huge/a.bin": 90 * MIB, "ptft/tasks/mini/data/huge/b.bin": 60 * MIB,
             "ptft/tasks/registry.py": 1000, "ptft/study/spec.py": 1000}
    upload = submit.UploadSet(Path("."), files, sum(files.values()), 100 * MIB)
    assert submit.suggest_excludes(upload) == [("ptft/tasks/mini/data/huge/", 150 * MIB)]


def test_dry_run_prints_the_plan_and_never_a_secret(repo: Path, capsys, monkeypatch):
    for name, value in FAKE.items():
        monkeypatch.setenv(name, value)
    rc, out = _run(capsys, "--dry-run", "--address", "http://127.0.0.1:8265")
    assert rc == 0
    assert "entrypoint: python -m ptft run configs/paper.yaml" in out
    assert "forwarded by name: WANDB_API_KEY, HF_TOKEN" in out
    for value in FAKE.values():
        assert value not in out
        assert not _files_containing(repo, value)
    # The printed raw command is exact: the shell splices the secrets in from the environment.
    command = out.split("ray job submit ", 1)[1].splitlines()[0]
    json_arg = command.split("--runtime-env-json ", 1)[1].rsplit(" -- ", 1)[0]
    printed = subprocess.run(["bash", "-c", f"printf %s {json_arg}"], capture_output=True, text=True,
                             check=True, env={**FAKE, "PATH": "/usr/bin:/bin"}).stdout
    assert json.loads(printed)["env_vars"]["WANDB_API_KEY"] == FAKE["WANDB_API_KEY"]


class _FakeClient:
    calls: list[dict] = []
    fail: bool = False

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def submit_job(self, **kwargs) -> str:
        _FakeClient.calls.append(kwargs)
        if _FakeClient.fail:  # an error that echoes the runtime_env, secrets included
            raise RuntimeError(f"bad runtime_env: {kwargs['runtime_env']}")
        return "raysubmit_test"


@pytest.mark.parametrize("fail", [False, True])
def test_submission_forwards_secrets_without_showing_them(repo: Path, capsys, monkeypatch, fail: bool):
    for name, value in FAKE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", _FakeClient)
    monkeypatch.setattr(_FakeClient, "calls", [])
    monkeypatch.setattr(_FakeClient, "fail", fail)
    rc, out = _run(capsys, "--resume", "--set", "storage=s3://bucket/ptft")
    (call,) = _FakeClient.calls
    assert call["entrypoint"] == "python -m ptft run configs/paper.yaml --resume --set storage=s3://bucket/ptft"
    assert {k: call["runtime_env"]["env_vars"][k] for k in FAKE} == FAKE  # forwarded to the job
    assert rc == (1 if fail else 0) and ("raysubmit_test" in out) != fail
    for value in FAKE.values():
        assert value not in out
        assert not _files_containing(repo, value)


def test_a_runtime_env_file_with_a_secret_is_refused(tmp_path: Path):
    env_file = write(tmp_path / "env.yaml", "working_dir: .\nenv_vars:\n  HF_TOKEN: hf_abc\n")
    with pytest.raises(submit.SubmitError, match="HF_TOKEN"):
        submit.load_runtime_env(env_file)


def test_bad_input_exits_2_on_stderr(repo: Path, capsys, tmp_path: Path):
    write(repo / "runs/paper.yaml", "name: x\n")
    assert ptft_main(["submit", "runs/paper.yaml", "--runtime-env", str(RUNTIME_ENV), "--dry-run"]) == 2
    assert "excluded from the upload" in capsys.readouterr().err
    outside = write(tmp_path / "elsewhere.yaml", "name: x\n")
    assert ptft_main(["submit", str(outside), "--runtime-env", str(RUNTIME_ENV), "--dry-run"]) == 2
    assert "outside the working_dir" in capsys.readouterr().err
    env_file = write(tmp_path / "env.yaml", "working_dir: .\nenv_vars:\n  WANDB_API_KEY: abc\n")
    assert ptft_main(["submit", "configs/paper.yaml", "--runtime-env", str(env_file), "--dry-run"]) == 2
    out = capsys.readouterr()
    assert "secrets are forwarded from your environment by name" in out.err and out.out == ""


def _without_ray_module(monkeypatch):
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name.startswith("ray._private"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)


@pytest.mark.parametrize("moved", ["module", "attribute"])
def test_moved_ray_internals_name_the_ray_version(repo: Path, capsys, monkeypatch, moved: str):
    if moved == "module":
        _without_ray_module(monkeypatch)
    else:
        monkeypatch.delattr(packaging, "_dir_travel")
    with pytest.raises(ray_upload.RayInternalsMoved, match=f"ray {ray.__version__}: its private packaging"):
        ray_upload.walk(repo, [], print, include_gitignore=True, logger=submit._QUIET)
    rc, out = _run(capsys, "--dry-run")
    assert rc == 1
    assert f"error: ray {ray.__version__}: its private packaging helpers moved" in out
    assert ("_dir_travel" if moved == "attribute" else "ray._private") in out


def test_ray_private_is_imported_only_by_the_adapter():
    root = Path(__file__).resolve().parents[2]
    imports = re.compile(r"^\s*(from|import)\s+ray\._private", re.MULTILINE)
    users = sorted(str(p.relative_to(root)) for d in ("ptft", "evals", "trainers", "ray_jobs")
                   for p in (root / d).rglob("*.py") if imports.search(p.read_text(encoding="utf-8")))
    assert users == ["ray_jobs/ray_upload.py"]
