"""A grid with the method axis on a real local Ray (slow): full, LoRA and prompt tuning side by side go
through the same trials, selection, evaluation and analysis; a rerun redoes nothing."""

from __future__ import annotations

import os

import pytest

from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.study.plan import build_plan
from ptft.study.spec import load_spec
from tests.ray_jobs.conftest import write_spec

pytestmark = pytest.mark.slow

METHODS = ["full", {"name": "lora", "r": 4, "alpha": 8, "learning_rates": [1e-2]},
           {"name": "prompt_tuning", "virtual_tokens": 4, "learning_rates": [3e-2]}]


@pytest.mark.timeout(900)
def test_methods_grid_end_to_end(tiny_checkpoints, tmp_path):
    import ray

    from evals.results import read_records
    from ray_jobs.grid import run_grid

    path = write_spec(tmp_path, tiny_checkpoints, name="methods", methods=METHODS)
    plan = build_plan(load_spec(str(path)))
    layout = GridLayout(plan.spec.storage_root())
    assert sorted(c.method.label for c in plan.cells) == ["full", "lora-r4", "prompt-4"]
    try:
        report = run_grid(plan)
        assert report.ok, report.trials_failed
        again = run_grid(plan)
    finally:
        ray.shutdown()
    assert again.ok and again.trials_run == 0

    by_method = {t.method.label: layout.trial(t.trial_id) for t in plan.trials}
    assert storage.exists(by_method["full"].model) and not storage.exists(by_method["full"].adapter)
    assert storage.exists(by_method["lora-r4"].model) and storage.exists(by_method["lora-r4"].adapter)
    assert storage.exists(by_method["prompt-4"].adapter) and not storage.exists(by_method["prompt-4"].model)

    records = [r for key in os.listdir(layout.evals_root) for r in read_records(layout.evals(key).results)]
    finetuned = {r.method: r for r in records if r.model_kind == "finetuned"}
    assert sorted(finetuned) == ["full", "lora-r4", "prompt-4"]
    assert finetuned["prompt-4"].extra["adapter"] == by_method["prompt-4"].adapter
    assert finetuned["prompt-4"].extra["path_or_id"] == str(tiny_checkpoints / "step100")  # scored on its base
    assert {r.method for r in records if r.model_kind == "base"} == {"full"}
    assert os.path.exists(os.path.join(layout.analysis_dir, "report.html"))
