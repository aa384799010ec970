"""The report's per-stage training table shows a rejection_sampling stage's kept fraction and mean best reward."""

from __future__ import annotations

import json

import pandas as pd

from evals.analysis.stages import stage_training_table
from ptft.core.layout import GridLayout


def _write(path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_a_rejection_sampling_stage_row(tmp_path):
    layout = GridLayout(str(tmp_path))
    cells = [{"cell_id": "c2", "recipes": ["r"], "objective": {"kind": "sft"}, "prior_stages": "sft:xsum/default",
              "plain": False, "rejection": {"dataset": "xsum", "samples": 4}, "train_dataset": "xsum",
              "train_format": "default", "checkpoint": "step100", "checkpoint_step": 100, "method": {"label": "full"}},
             {"cell_id": "c3", "recipes": ["r"], "objective": {"kind": "sft"}, "prior_stages": "sft:xsum/default",
              "plain": False, "rejection": None, "train_dataset": "mnli", "train_format": "default",
              "checkpoint": "step100", "checkpoint_step": 100, "method": {"label": "full"}}]
    _write(tmp_path / "plan.json", {"cells": cells})
    for cell_id, trial in (("c2", "t2"), ("c3", "t3")):
        _write(tmp_path / "selection" / f"{cell_id}.json", {"winner": {"trial_id": trial, "lr": 1e-3}})
        _write(tmp_path / "trials" / trial / "manifest.json", {"metrics": {"val_loss": 1.5}})
    _write(tmp_path / "stages" / "c2" / "summary.json", {"kept_fraction": 0.75, "mean_best_score": 0.4,
                                                                 "config": {"reward": {"model": "org/rm"}}})
    assert layout.stage_data("c2") == str(tmp_path / "stages" / "c2")
    table = stage_training_table(str(tmp_path)).set_index("lineage")
    row = table.loc["sft:xsum/default>rejection_sampling:xsum"]
    assert row["objective"] == "rejection_sampling" and row["kept_fraction"] == 0.75
    assert row["mean_best_score"] == 0.4 and row["val_loss"] == 1.5 and row["reward"] == "org/rm"
    other = table.loc["sft:xsum/default>sft:mnli/default"]
    assert other["objective"] == "sft" and pd.isna(other["kept_fraction"])
