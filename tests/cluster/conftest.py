"""Shared paths and a fake repository tree for the cluster tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
RUNTIME_ENV = CLUSTER / "runtime_env.yaml"
ENTRYPOINT = "python -m ptft run configs/paper.yaml"
MIB = 1024**2


def load_yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def write(path: Path, data: bytes | str = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# What a working copy looks like after a few runs: code (kept) and everything that must not travel.
KEPT = {
    "README.md",
    "pyproject.toml",
    "configs/paper.yaml",
    "ptft/__init__.py",
    "ray_jobs/grid.py",
    "ptft/tasks/mini/data/mnli/train.jsonl",  # shipped mini datasets: `data` is excluded at the top only
    "evals/analysis/report.py",
    "evals/keep/notes.txt",
    ".gitignore",
    "evals/.gitignore",
    "empty_dir",  # Ray packs empty directories as entries
}
DROPPED = [
    ".git/objects/pack/pack-1.pack",
    ".venv/lib/python3.11/site-packages/torch/lib.so",
    "runs/amuro-char/trial_0/checkpoint.bin",
    "outputs/report.html",
    "wandb/offline-run-1/run-1.wandb",
    "evals/wandb/latest-run/x.log",
    "data/raw/train.jsonl",
    "checkpoints/step1000/model.safetensors",
    "ptft/__pycache__/spec.cpython-311.pyc",
    ".pytest_cache/v/cache/nodeids",
    "demo_out/tiny/model.safetensors",
    "evals/scratch/big.tmp",  # ignored by evals/.gitignore: Ray honours nested .gitignore files
    "notes.local",  # ignored by the root .gitignore
]


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A repository-shaped tree with code, outputs, caches and a 12 MiB file under runs/."""
    root = tmp_path / "repo"
    for rel in KEPT - {"empty_dir", ".gitignore", "evals/.gitignore"}:
        write(root / rel, f"# {rel}\n")
    write(root / ".gitignore", "*.local\n")
    write(root / "evals/.gitignore", "scratch/\n")
    (root / "empty_dir").mkdir()
    for rel in DROPPED:
        write(root / rel, b"0" * 1024)
    write(root / "runs/amuro-char/trial_1/big.bin", b"\0" * (12 * MIB))
    return root
