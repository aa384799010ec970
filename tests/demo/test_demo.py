"""`ptft demo --quick` end to end (slow): real pre-training, a real grid on a local Ray, the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptft.cli.demo.profiles import QUICK

pytestmark = pytest.mark.slow


def _run_quick_demo(out: Path) -> tuple[int, str]:
    import contextlib
    import io

    import ray

    from ptft.cli.demo.command import demo_main

    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            status = demo_main(["--out", str(out), "--quick", "--no-progress"])
    finally:
        ray.shutdown()
    return status, printed.getvalue()


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> tuple[Path, int, str]:
    """One `ptft demo --quick` run, shared by the tests below (it takes about a minute)."""
    import os

    env = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "DS_ACCELERATOR": "cpu"}
    saved = {key: os.environ.get(key) for key in (*env, "WANDB_API_KEY")}
    os.environ.update(env)
    os.environ.pop("WANDB_API_KEY", None)
    out = tmp_path_factory.mktemp("quick-demo")
    try:
        status, printed = _run_quick_demo(out)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return out, status, printed


def test_quick_demo_runs_the_whole_study(quick_demo):
    import pandas as pd

    tmp_path, status, printed = quick_demo
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
    assert set(transfer["base_model"]) == {"ptft-demo-tiny-olmo"}  # the family, not one checkpoint's folder
    own = transfer[(transfer["train_dataset"] == "mnli") & (transfer["eval_dataset"] == "mnli_matched")
                   & (transfer["status"] == "ok")]
    assert own["checkpoint"].nunique() == len(QUICK.pretrain.checkpoint_steps)
    assert own["delta"].mean() > 0, own[["checkpoint", "base", "finetuned", "delta"]]

    # The last lines say where the report is and how to sync the W&B runs.
    tail = printed.strip().splitlines()[-3:]
    assert any("report.html" in line for line in tail), tail
    assert any(line.endswith(f"wandb sync {tmp_path / 'grid' / 'wandb'}/offline-run-*") for line in tail), tail


def test_the_same_command_gives_the_same_numbers(quick_demo, tmp_path: Path, monkeypatch):
    """Determinism: a second run of `ptft demo --quick` from scratch (pre-training included) agrees exactly
    with the first on every trial's losses and every eval metric."""
    import json

    import pandas as pd

    for key, value in {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "DS_ACCELERATOR": "cpu"}.items():
        monkeypatch.setenv(key, value)
    first, status, _ = quick_demo
    assert status == 0
    assert _run_quick_demo(tmp_path / "second")[0] == 0
    runs = []
    for out in (first, tmp_path / "second"):
        grid = out / "grid"
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
