"""A recipe with a rejection_sampling stage on a real local Ray (slow): SFT on xsum, then sample 4 summaries
per xsum prompt from its winner, keep the best by ROUGE-L, and SFT on the kept set; a rerun redoes nothing."""

from __future__ import annotations

import os

import pytest

from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.grid.selection import selected_winner
from ptft.study.plan import build_plan
from ptft.study.spec import load_spec
from tests.ray_jobs.conftest import write_spec

pytestmark = pytest.mark.slow

SFT = {"kind": "sft", "datasets": ["xsum"]}
RS = {"kind": "rejection_sampling", "dataset": "xsum", "samples": 4, "temperature": 1.0, "top_p": 0.95, "seed": 3,
      "reward": "rougeL", "max_new_tokens": 12, "prompts": 16}


@pytest.mark.timeout(1500)
def test_rejection_sampling_samples_keeps_and_trains_once(tiny_checkpoints, tmp_path):
    import ray

    from evals.results import read_records
    from ray_jobs.grid import run_grid

    path = write_spec(tmp_path, tiny_checkpoints, name="rs", datasets=(), eval_datasets=("xsum",),
                      recipes={"sft-rs": [SFT, RS]})
    plan = build_plan(load_spec(str(path)))
    layout = GridLayout(plan.spec.storage_root())
    (cell,) = [c for c in plan.cells if c.rejection is not None]
    try:
        report = run_grid(plan)
        assert report.ok, report.trial_errors
        data = layout.stage_data(cell.cell_id)
        for name in ("samples.jsonl", "kept.jsonl", "summary.json", "DONE.json"):
            assert storage.exists(storage.join(data, name)), name
        summary = storage.read_json(storage.join(data, "summary.json"))
        assert summary["prompts"] == 16 and summary["samples"] == 64
        kept = storage.read_jsonl(storage.join(data, "kept.jsonl"))
        assert 0 < summary["kept"] == len(kept) and summary["kept_fraction"] == len(kept) / 16
        assert 0.0 <= summary["mean_score"] <= summary["mean_best_score"] <= 1.0

        # the stage trained on its kept set, from the first stage's winner, and exported its model
        winner = selected_winner(layout, cell.cell_id)
        assert winner is not None and os.path.isdir(layout.trial(winner).model)
        manifest = storage.read_json(layout.trial(winner).manifest)
        assert manifest["job"]["dataset"] == f"rs_{cell.cell_id}"
        assert manifest["job"]["model"] == layout.trial(selected_winner(layout, cell.parent or "")).model
        records = [r for key in os.listdir(layout.evals_root) for r in read_records(layout.evals(key).results)]
        assert ("rejection_sampling", "sft:xsum/default", "xsum") in {
            (r.objective, r.prior_stages, r.train_dataset) for r in records if r.model_kind == "finetuned"}

        # a rerun samples nothing and trains nothing
        stamp = os.stat(storage.join(data, "samples.jsonl")).st_mtime_ns
        again = run_grid(plan)
        assert again.ok and again.trials_run == 0
        assert os.stat(storage.join(data, "samples.jsonl")).st_mtime_ns == stamp
    finally:
        ray.shutdown()
