"""Fixtures for the grid tests: tiny OLMo checkpoints and small specs written into tmp folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> Path:
    """Two tiny OLMo 'pre-training checkpoints' (different seeds) with a locally trained tokenizer."""
    from ptft.core.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("ckpts")
    for seed, name in enumerate(("step100", "step400")):
        build_tiny_model(str(root / name), seed=seed)
    return root


def write_spec(folder: Path, checkpoints: Path, *, name: str, datasets=("mnli",), formats=("default",),
               lrs=(1e-3,), n_checkpoints: int = 1, eval_datasets=("mnli_matched",), recipes: dict | None = None,
               **train) -> Path:
    """A grid spec sized for 2 CPU cores; `train` overrides TrainConfig fields; `recipes` as the spec's."""
    refs = [{"path": str(checkpoints / n), "step": int(n[4:])} for n in ("step100", "step400")[:n_checkpoints]]
    spec = {
        "name": name,
        "model": {"id": str(checkpoints / "step400"), "checkpoints": refs},
        "data": {"source": "mini"},
        "train": {"datasets": list(datasets), "formats": list(formats), "learning_rates": list(lrs),
                  "epochs": 1, "batch_size": 4, "grad_accum": 1, "max_length": 128, "zero_stage": 2,
                  "precision": "fp32", "val_size": 8, "max_steps": 4, "log_every": 2, "checkpoint_every": 2,
                  **train},
        "eval": {"datasets": list(eval_datasets), "formats": list(formats), "shots": [1], "mode": "fixed",
                 "limit": 6, "batch_size": 8, "max_new_tokens": 8, "bootstrap_resamples": 50},
        "resources": {"workers_per_trial": 1, "gpus_per_worker": 0, "cpus_per_worker": 0.9,
                      "max_concurrent_trials": 2, "max_failures": 1, "eval_gpus_per_worker": 0,
                      "eval_cpus_per_worker": 0.9, "max_concurrent_evals": 2},
        **({"recipes": recipes} if recipes else {}),
        "storage": str(folder / "storage"),
        "wandb": {"project": "ptft-test", "mode": "offline"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def files_under(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, names in os.walk(root) for f in names]
