"""`ptft demo --quick` end to end (slow): real pre-training, a real grid on a local Ray, the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptft.cli.demo.profiles import QUICK

pytestmark = pytest.mark.slow


def test_quick_demo_runs_the_whole_study(tmp_path: Path, monkeypatch, capsys):
    import pandas as pd
    import ray

    from ptft.cli.demo.command import demo_main

    for key, value in {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "DS_ACCELERATOR": "cpu"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    try:
        status = demo_main(["--out", str(tmp_path), "--quick", "--no-progress"])
    finally:
        ray.shutdown()
    assert status == 0

    # Pre-training left loadable checkpoints, each with its tokenizer.
    for step in QUICK.pretrain.checkpoint_steps:
        ckpt = tmp_path / "pretrain" / f"step{step}"
        assert (ckpt / "config.json").is_file(), ckpt
        assert (ckpt / "tokenizer.json").is_file(), ckpt
        assert list(ckpt.glob("*.safetensors")), ckpt

    # The grid wrote the analysis and offline W&B runs.
    analysis = tmp_path / "grid" / "analysis"
    for name in ("report.html", "transfer.csv", "groups.csv"):
        assert (analysis / name).is_file(), name
    assert list(analysis.glob("*.png"))
    assert list((tmp_path / "grid" / "wandb").glob("offline-run-*"))

    # Fine-tuning helps on the trained task's own eval set, on average over the checkpoints.
    transfer = pd.read_csv(analysis / "transfer.csv")
    own = transfer[(transfer["train_dataset"] == "mnli") & (transfer["eval_dataset"] == "mnli_matched")
                   & (transfer["status"] == "ok")]
    assert own["checkpoint"].nunique() == len(QUICK.pretrain.checkpoint_steps)
    assert own["delta"].mean() > 0, own[["checkpoint", "base", "finetuned", "delta"]]

    # The last lines say where the report is and how to sync the W&B runs.
    tail = capsys.readouterr().out.strip().splitlines()[-3:]
    assert any("report.html" in line for line in tail), tail
    assert any(line.endswith(f"wandb sync {tmp_path / 'grid' / 'wandb'}/offline-run-*") for line in tail), tail


def test_the_same_command_gives_the_same_numbers(tmp_path: Path, monkeypatch):
    """Determinism: two runs of `ptft demo --quick` from scratch (pre-training included) agree exactly on
    every trial's losses and every eval metric."""
    import json

    import pandas as pd
    import ray

    from ptft.cli.demo.command import demo_main

    for key, value in {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "DS_ACCELERATOR": "cpu"}.items():
        monkeypatch.setenv(key, value)
    runs = []
    for name in ("first", "second"):
        try:
            assert demo_main(["--out", str(tmp_path / name), "--quick", "--no-progress"]) == 0
        finally:
            ray.shutdown()
        grid = tmp_path / name / "grid"
        losses = {}
        for manifest in grid.glob("trials/*/manifest.json"):
            m = json.loads(manifest.read_text())
            job = m["job"]
            losses[(Path(job["model"]).name, job["dataset"], job["fmt"], job["lr"])] = (
                m["val_loss"], m["metrics"].get("loss"))
        results = pd.read_csv(grid / "analysis" / "results.csv")
        keys = ["model_kind", "checkpoint", "train_dataset", "train_format", "lr", "eval_dataset", "eval_format",
                "shots", "metric"]
        runs.append((losses, results.set_index(keys)[["value", "std", "n"]].sort_index()))
    (losses_a, results_a), (losses_b, results_b) = runs
    assert losses_a and losses_a == losses_b
    pd.testing.assert_frame_equal(results_a, results_b, check_exact=True)
