"""A grid of two models on a real local Ray (slow): a tiny OLMo and a tiny GPT-NeoX (no pad token, eos as
bos), each with a checkpoint of the same label, fine-tuned and evaluated on a task the spec declares. Each
record names its own model; tokens seen come from the family where it defines them (here a fixed batch)."""

from __future__ import annotations

import os

import pytest
import yaml

from ptft.core.layout import GridLayout
from ptft.grid.ledger import read_state
from ptft.study.plan import build_plan
from ptft.study.spec import load_spec
from tests.ray_jobs.conftest import write_spec
from tests.study.conftest import REPO
from tests.tasks.conftest import isolated_registry  # noqa: F401  (the fixture, used below)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("isolated_registry")]

TOKENS_PER_STEP = 4096  # the tiny NeoX's "pre-training batch": its checkpoint has seen 200 x 4096 tokens


@pytest.mark.timeout(900)
def test_two_models_of_two_architectures_end_to_end(tmp_path):
    import ray

    from evals.results import read_records
    from ptft.core.tiny import build_tiny_model
    from ray_jobs.grid import run_grid

    olmo, neox = tmp_path / "ck" / "olmo" / "step100", tmp_path / "ck" / "neox" / "step200"
    build_tiny_model(str(olmo), seed=0)
    build_tiny_model(str(neox), seed=1, architecture="gpt_neox")
    path = write_spec(tmp_path, tmp_path, name="two-models", datasets=("mini_summaries",),
                      eval_datasets=("mini_summaries",), lrs=(1e-3,))
    raw = yaml.safe_load(path.read_text())
    raw.pop("model")
    raw["models"] = [  # both checkpoints are labelled "final": a label may repeat across models
        {"id": str(olmo), "name": "tiny-olmo", "checkpoints": [{"path": str(olmo), "step": 100, "name": "final"}]},
        {"id": str(neox), "name": "tiny-neox", "tokens_per_step": TOKENS_PER_STEP,
         "checkpoints": [{"path": str(neox), "step": 200, "name": "final"}]},
    ]
    raw["tasks"] = [os.path.join(REPO, "configs", "tasks", "examples.yaml")]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    plan = build_plan(load_spec(str(path)))
    layout = GridLayout(plan.spec.storage_root())
    assert len(plan.cells) == 2 and len(plan.eval_models()) == 4
    try:
        report = run_grid(plan)
    finally:
        ray.shutdown()
    assert report.ok, report.trial_errors
    assert read_state(plan, layout).complete

    assert sorted(os.listdir(layout.evals_root))[:2] == ["base-tiny-neox-final", "base-tiny-olmo-final"]
    records = [r for key in os.listdir(layout.evals_root) for r in read_records(layout.evals(key).results)]
    assert len(records) == len(plan.eval_jobs) == 4
    seen = {(r.base_model, r.model_kind): r for r in records}
    assert sorted(seen) == [("tiny-neox", "base"), ("tiny-neox", "finetuned"), ("tiny-olmo", "base"),
                            ("tiny-olmo", "finetuned")]
    assert all(r.eval_dataset == "mini_summaries" and r.metric == "rougeL" and r.n > 0 for r in records)
    for kind in ("base", "finetuned"):
        assert seen[("tiny-neox", kind)].checkpoint_tokens == pytest.approx(200 * TOKENS_PER_STEP / 1e9)
        assert seen[("tiny-olmo", kind)].checkpoint_tokens is None  # a local folder's family names no tokens
        assert seen[("tiny-neox", kind)].checkpoint == seen[("tiny-olmo", kind)].checkpoint == "final"
    # Each fine-tuned model started from its own model's checkpoint.
    trials = {t.model_name: t for t in plan.trials}
    assert seen[("tiny-neox", "finetuned")].trial_id == trials["tiny-neox"].trial_id
    assert seen[("tiny-olmo", "finetuned")].trial_id == trials["tiny-olmo"].trial_id
    assert os.path.exists(os.path.join(layout.analysis_dir, "report.html"))
