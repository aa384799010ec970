"""The method axis in the spec and the plan: ids of method-free specs are unchanged, each method is a
cell of its own, and bad method specs fail at plan time naming the field."""

from __future__ import annotations

import hashlib

import pytest

from ptft.study.plan import build_plan
from ptft.study.spec import SpecError, parse_spec
from tests.study.conftest import edited

# Computed at commit e31edf1, before methods existed: specs without `train.methods` must keep them,
# so grids started before the method axis continue where they stopped.
PINNED = {
    "paper": {"n": 2048, "first_cell": "b8e0ad4ae4b2", "first_trial": "849e9d05be62", "all": "425f1ed146d50afb"},
    "smoke": {"n": 104, "first_cell": "ab0905c2c5a0", "first_trial": "8e63862e8c31", "all": "e655502faee7b8f0"},
}


def _ids(raw: dict) -> dict:
    plan = build_plan(parse_spec(raw))
    ids = [c.cell_id for c in plan.cells] + [t.trial_id for t in plan.trials] + [j.job_id for j in plan.eval_jobs]
    return {"n": len(ids), "first_cell": plan.cells[0].cell_id, "first_trial": plan.trials[0].trial_id,
            "all": hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]}


def test_specs_without_methods_keep_their_ids(paper_raw, smoke_raw):
    assert _ids(paper_raw) == PINNED["paper"]
    assert _ids(smoke_raw) == PINNED["smoke"]
    assert _ids(edited(smoke_raw, train__methods=["full"])) == PINNED["smoke"]  # full spelled out: the same


LORA = {"name": "lora", "r": 8, "alpha": 16, "learning_rates": [1e-2, 3e-2]}


def test_each_method_is_a_cell_with_its_own_lrs(smoke_raw):
    base = build_plan(parse_spec(smoke_raw))
    plan = build_plan(parse_spec(edited(smoke_raw, train__methods=["full", LORA, "prompt_tuning"])))
    assert len(plan.cells) == 3 * len(base.cells)
    by_method: dict[str, list] = {}
    for cell in plan.cells:
        by_method.setdefault(cell.method.label, []).append(cell)
    assert sorted(by_method) == ["full", "lora-r8", "prompt-20"]
    assert {c.cell_id for c in by_method["full"]} == {c.cell_id for c in base.cells}
    assert not {c.cell_id for c in by_method["lora-r8"]} & {c.cell_id for c in base.cells}
    assert all(c.lrs == (1e-2, 3e-2) for c in by_method["lora-r8"])
    assert all(c.lrs == (1e-3, 3e-3) for c in by_method["prompt-20"])  # the section's lrs
    lora_trials = [t for t in plan.trials if t.method.label == "lora-r8"]
    assert lora_trials and all("-lora-r8-" in t.name and t.method.r == 8 for t in lora_trials)
    # A finetuned model per method: eval jobs grow with the cells, base evals are shared.
    assert len(plan.eval_models()) == len(base.eval_models()) + 2 * len(base.cells)


def test_method_parameters_define_the_cell_and_a_label_does_not(smoke_raw):
    def lora_cells(method: dict) -> set[str]:
        plan = build_plan(parse_spec(edited(smoke_raw, train__methods=[method])))
        return {c.cell_id for c in plan.cells}

    assert lora_cells({"name": "lora", "r": 8}) != lora_cells({"name": "lora", "r": 16})
    assert lora_cells({"name": "lora", "r": 8}) != lora_cells({"name": "lora", "r": 8, "dropout": 0.1})
    assert lora_cells({"name": "lora", "r": 8}) == lora_cells({"name": "lora", "r": 8, "label": "small"})
    assert lora_cells({"name": "lora", "r": 8}) == lora_cells({"name": "lora", "r": 8, "learning_rates": [1e-3, 3e-3]})


def test_a_dataset_can_take_a_subset_of_the_methods(smoke_raw):
    raw = edited(smoke_raw, train__methods=["full", LORA])
    raw["train"]["datasets"] = [{"name": "mnli", "methods": ["full", "lora-r8"]}, {"name": "xsum", "methods": ["full"]}]
    plan = build_plan(parse_spec(raw))
    assert sorted({(c.train_dataset, c.method.label) for c in plan.cells}) == [
        ("mnli", "full"), ("mnli", "lora-r8"), ("xsum", "full")]


def _problems(raw: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return info.value.problems


@pytest.mark.parametrize("methods, expected", [
    (["dora"], "train.methods[0]"),
    ([{"name": "lora", "r": 0}], "train.methods[0].r: Input should be greater than or equal to 1"),
    ([{"name": "lora", "target_modules": "everything"}], "target_modules"),
    ([{"name": "prompt_tuning", "virtual_tokens": 0}], "virtual_tokens"),
    ([{"name": "p_tuning", "encoder": "gru"}], "encoder"),
    ([{"name": "lora", "rank": 8}], "rank"),
    ([{"name": "lora", "learning_rates": [2.0]}], "learning rate 2.0"),
    (["lora", {"name": "lora", "alpha": 8}], "two methods are labelled 'lora-r16'"),
    ([{"name": "prompt_tuning", "virtual_tokens": 300}], "300 virtual tokens leave no room in max_length 256"),
])
def test_bad_method_specs_fail_naming_the_field(smoke_raw, methods, expected):
    lines = _problems(edited(smoke_raw, train__methods=methods))
    assert any(expected in line for line in lines), lines


def test_unknown_method_label_on_a_dataset(smoke_raw):
    raw = edited(smoke_raw, train__methods=["full"])
    raw["train"]["datasets"] = [{"name": "mnli", "methods": ["lora-r16"]}]
    lines = _problems(raw)
    assert any("datasets[0].methods" in line and "lora-r16" in line for line in lines), lines


@pytest.fixture
def tiny_checkpoints(smoke_raw, tmp_path):
    """The smoke spec on two local checkpoint folders holding a tiny OLMo's config."""
    from ptft.core.tiny import tiny_olmo_config

    for name in ("step50", "step600"):
        tiny_olmo_config(512).save_pretrained(tmp_path / "ck" / name)
    return edited(smoke_raw, model__id=str(tmp_path / "ck" / "step600"),
                  model__checkpoints=[{"path": str(tmp_path / "ck" / "step50"), "step": 50},
                                      {"path": str(tmp_path / "ck" / "step600"), "step": 600}],
                  storage=str(tmp_path / "runs"))


def test_a_lora_target_the_model_lacks_fails_in_the_preflight(tiny_checkpoints):
    from ptft.study.preflight import PreflightError, check_methods

    good = edited(tiny_checkpoints, train__methods=[{"name": "lora", "target_modules": ["q_proj", "v_proj"]},
                                                    {"name": "lora", "r": 4, "target_modules": "attention"}])
    check_methods(build_plan(parse_spec(good)))
    bad = edited(tiny_checkpoints, train__methods=["full", {"name": "lora", "target_modules": ["query_key_value"]}])
    with pytest.raises(PreflightError, match=r"train.methods\[1\].target_modules: \['query_key_value'\] are not "
                                             r"modules of .*its linear layers are \[.*'q_proj'"):
        check_methods(build_plan(parse_spec(bad)))


def test_the_estimate_knows_each_methods_flops_and_memory(tiny_checkpoints):
    from ptft.study.estimate import estimate_plan, lora_params

    raw = edited(tiny_checkpoints, train__methods=["full", {"name": "lora", "r": 8},
                                                   {"name": "prompt_tuning", "virtual_tokens": 10}])
    plan = build_plan(parse_spec(raw))
    estimate = estimate_plan(plan)
    n = estimate.num_params
    full, lora, prompt = (estimate.methods[k] for k in ("full", "lora-r8", "prompt-10"))
    assert full.train_flops == 6.0 * n * full.train_tokens
    assert full.trainable_params == n and full.model_state_bytes == 20 * n  # fp32: weight, grad, master, 2 moments
    # A tiny OLMo's q/k/v/o (d x d) and gate/up/down (d x ff): r * (in + out) per matrix per layer.
    config = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
    lora_method = next(c.method for c in plan.cells if c.method.name == "lora")
    assert lora.trainable_params == lora_params(lora_method, config) == 2 * 8 * (4 * 128 + 3 * 192)
    assert lora.train_flops == (4.0 * n + 6.0 * lora.trainable_params) * lora.train_tokens
    assert prompt.train_tokens > full.train_tokens  # every example carries its 10 virtual tokens
    assert prompt.train_flops == 4.0 * n * prompt.train_tokens
    assert lora.model_state_bytes < full.model_state_bytes / 3
    assert estimate.train_flops == full.train_flops + lora.train_flops + prompt.train_flops
