"""The issue's Llama-3.1-style recipe on a real local Ray (slow): SFT on Tulu, then rejection sampling on
Tulu's prompts from its winner scored by a reward model given by id (a local stand-in folder), SFT on the
kept replies, then DPO on UltraFeedback. Every stage model is evaluated and the stage table reads what
each stage changed; a rerun samples and trains nothing."""

from __future__ import annotations

import math
import os

import pytest

from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.grid.selection import selected_winner
from ptft.study.plan import build_plan
from ptft.study.spec import load_spec
from tests.ray_jobs.conftest import write_spec

pytestmark = pytest.mark.slow

SFT = {"kind": "sft", "datasets": ["tulu"], "formats": ["default"]}
RS = {"kind": "rejection_sampling", "dataset": "tulu", "samples": 3, "temperature": 1.0, "top_p": 0.95, "seed": 3,
      "max_new_tokens": 10, "prompts": 12}
DPO = {"kind": "dpo", "dataset": "ultrafeedback", "beta": 0.1, "max_steps": 2, "max_length": 256}


@pytest.mark.timeout(1500)
def test_sft_rejection_sampling_dpo_runs_end_to_end(tiny_checkpoints, tmp_path):
    import ray

    from evals.analysis.stages import stage_table
    from evals.results import read_records
    from ptft.core.tiny import build_tiny_reward_model
    from ray_jobs.grid import run_grid

    build_tiny_reward_model(str(tmp_path / "reward-model"), seed=1)
    recipe = [SFT, {**RS, "reward": {"model": "reward-model", "batch_size": 4}}, DPO]
    path = write_spec(tmp_path, tiny_checkpoints, name="rs", datasets=(), eval_datasets=("mnli_matched",),
                      recipes={"llama31": recipe})
    plan = build_plan(load_spec(str(path)))
    layout = GridLayout(plan.spec.storage_root())
    (cell,) = [c for c in plan.cells if c.rejection is not None]
    (dpo,) = [c for c in plan.cells if c.objective.kind == "dpo"]
    assert dpo.parent == cell.cell_id
    try:
        report = run_grid(plan)
        assert report.ok, report.trial_errors
        data = layout.stage_data(cell.cell_id)
        for name in ("samples.jsonl", "kept.jsonl", "summary.json", "DONE.json"):
            assert storage.exists(storage.join(data, name)), name
        summary = storage.read_json(storage.join(data, "summary.json"))
        assert summary["prompts"] == 12 and summary["samples"] == 36
        assert summary["config"]["reward"]["model"] == str(tmp_path / "reward-model")
        kept = storage.read_jsonl(storage.join(data, "kept.jsonl"))
        assert 0 < summary["kept"] == len(kept) and summary["kept_fraction"] == len(kept) / 12
        assert all(row["messages"][-1]["role"] == "assistant" and row["messages"][-1]["content"] for row in kept)
        assert summary["mean_score"] <= summary["mean_best_score"]  # reward-model scores: not bounded to [0, 1]

        # the stage trained on its kept set, from the SFT winner; DPO started from the stage's winner
        winner = selected_winner(layout, cell.cell_id)
        assert winner is not None and os.path.isdir(layout.trial(winner).model)
        manifest = storage.read_json(layout.trial(winner).manifest)
        assert manifest["job"]["dataset"] == f"rs_{cell.cell_id}"
        assert manifest["job"]["model"] == layout.trial(selected_winner(layout, cell.parent or "")).model
        dpo_winner = selected_winner(layout, dpo.cell_id)
        dpo_manifest = storage.read_json(layout.trial(dpo_winner).manifest)
        assert dpo_manifest["job"]["model"] == layout.trial(winner).model
        assert 0.0 <= dpo_manifest["metrics"]["reward_accuracy"] <= 1.0

        # every stage model was evaluated, and the stage table reads each stage against the one before
        records = [r for key in os.listdir(layout.evals_root) for r in read_records(layout.evals(key).results)]
        lineages = {(r.objective, r.prior_stages) for r in records if r.model_kind == "finetuned"}
        assert lineages == {("sft", None), ("rejection_sampling", "sft:tulu/default"),
                            ("dpo", "sft:tulu/default>rejection_sampling:tulu")}
        table = stage_table(records)
        last = table[table["objective"] == "dpo"]
        assert len(last) and last["parent"].eq("sft:tulu/default>rejection_sampling:tulu").all()
        assert all(math.isfinite(v) for v in last["delta_vs_parent"]) and last["stage"].eq(3).all()

        # W&B: the sampling run joins the cell's group, which says it is rejection sampling, not plain SFT
        from tests.ray_jobs.wandb_files import offline_runs

        runs = offline_runs(tmp_path / "storage" / "wandb")
        (sampling,) = [r for r in runs if r.job_type == "rejection_sampling"]
        assert sampling.group.startswith("rejection_sampling tulu-default-ckpt step100 after sft:tulu/default")
        assert sampling.summary["kept"] == summary["kept"]
        assert {r.group for r in runs if r.job_type == "train" and r.config.get("cell_id") == cell.cell_id} == \
            {sampling.group}

        # a rerun samples nothing and trains nothing
        stamp = os.stat(storage.join(data, "samples.jsonl")).st_mtime_ns
        again = run_grid(plan)
        assert again.ok and again.trials_run == 0
        assert os.stat(storage.join(data, "samples.jsonl")).st_mtime_ns == stamp
    finally:
        ray.shutdown()
