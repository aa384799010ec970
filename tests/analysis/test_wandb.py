"""W&B offline: the run writes its tables as files (wandb 0.31 cannot read .wandb files back)."""

from __future__ import annotations

import json

import pytest

from evals.analysis import analyze, log_to_wandb
from ptft.core.wandb_settings import WandbModeError, resolve_mode
from tests.analysis.conftest import MAIN_STEP, known_records

SECRET = "fake-key-0123456789-do-not-store"


def test_resolve_mode(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert resolve_mode(None) == "offline" and resolve_mode("auto") == "offline"
    assert resolve_mode("disabled") == "disabled"
    with pytest.raises(WandbModeError, match="WANDB_API_KEY"):  # online without a key: an error, not a guess
        resolve_mode("online")
    with pytest.raises(WandbModeError, match="not one of"):
        resolve_mode("onlin")
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    assert resolve_mode("auto") == "online" and resolve_mode("online") == "online"
    assert resolve_mode("offline") == "offline"


def test_offline_run_writes_tables_and_never_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)  # present, but the run is offline and must not store it
    analysis = analyze(known_records(), main_step=MAIN_STEP)
    run_dir = log_to_wandb(analysis, "ptft-analysis-test", mode="offline", dir=str(tmp_path), group="grid-x")
    assert run_dir is not None and "offline-run-" in run_dir
    tables = {p.name.split("_table_")[0] if "_table_" in p.name else p.name.rsplit("_", 2)[0]: p
              for p in (tmp_path / "wandb").glob("offline-run-*/files/media/table/*.table.json")}
    for stem in ("transfer", "transfer_mean", "forgetting", "format_sensitivity", "groups", "results"):
        assert any(name.startswith(stem) for name in tables), (stem, sorted(tables))
    transfer_file = next(p for name, p in tables.items() if name == "transfer")
    transfer = json.loads(transfer_file.read_text())
    assert "delta" in transfer["columns"] and len(transfer["data"]) == 16
    assert any(name.startswith("transfer_heatmap_") for name in tables)  # the Vega heatmap's table
    assert any(name.startswith("groups_curve_") for name in tables)  # curves over pre-training step
    assert list((tmp_path / "wandb").glob("offline-run-*/files/media/images/**/*.png"))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
