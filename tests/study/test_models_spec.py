"""Several models in one spec (`models:`), each with its checkpoint family; `model:` keeps every id and name."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from ptft.grid.ledger import eval_model_key
from ptft.study.estimate import estimate_plan
from ptft.study.plan import build_plan
from ptft.study.spec import SpecError, parse_spec
from tests.study.conftest import edited

# Computed before `models:` existed (at 46f80b2): what a grid's storage and Tune hold besides the ids
# (cell labels, trial names, eval models and their folders), so a `model:` grid continues where it stopped.
PINNED_NAMES = {"paper": "5ebedf48fb22b419", "smoke": "ad7fe58f9efe93fb"}

OLMO = {"id": "allenai/OLMo-1B-hf", "checkpoints": [1000, "main"], "num_params": 1_176_764_416}
PYTHIA = {"id": "EleutherAI/pythia-160m", "name": "pythia", "checkpoints": [1000, 143000],
          "num_params": 162_322_944}


def _names(plan) -> str:
    names = ([c.label for c in plan.cells] + [t.name for t in plan.trials] + [j.model for j in plan.eval_jobs]
             + [str(eval_model_key(j, {})) for j in plan.eval_jobs])
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def _ids(plan) -> list[str]:
    return [c.cell_id for c in plan.cells] + [t.trial_id for t in plan.trials] + [j.job_id for j in plan.eval_jobs]


def _two_models(raw: dict, *models: dict) -> dict:
    out = copy.deepcopy(raw)
    out.pop("model")
    out["models"] = [copy.deepcopy(m) for m in models]
    return out


def problems(raw: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return info.value.problems


def test_a_spec_of_one_model_keeps_its_names_and_folders(paper_raw, smoke_raw):
    assert _names(build_plan(parse_spec(paper_raw))) == PINNED_NAMES["paper"]
    assert _names(build_plan(parse_spec(smoke_raw))) == PINNED_NAMES["smoke"]
    assert all(c.model_name is None for c in build_plan(parse_spec(smoke_raw)).cells)


def test_a_grid_of_two_models_has_each_models_cells_with_their_own_ids(paper_raw):
    olmo = build_plan(parse_spec(edited(paper_raw, model=OLMO)))
    pythia = build_plan(parse_spec(edited(paper_raw, model=PYTHIA)))
    both = build_plan(parse_spec(_two_models(paper_raw, OLMO, PYTHIA)))
    # The ids hash the model's id, not its place in the list: adding a model moves no other model's ids.
    assert [c.cell_id for c in both.cells] == [c.cell_id for c in olmo.cells] + [c.cell_id for c in pythia.cells]
    assert {c.cell_id for c in both.cells} == {c.cell_id for c in olmo.cells} | {c.cell_id for c in pythia.cells}
    assert {t.trial_id for t in both.trials} == {t.trial_id for t in olmo.trials} | {t.trial_id for t in pythia.trials}
    assert {j.job_id for j in both.eval_jobs} == {j.job_id for j in olmo.eval_jobs} | {j.job_id for j in pythia.eval_jobs}
    assert len(both.cells) == len(olmo.cells) + len(pythia.cells)
    assert {c.model_name for c in both.cells} == {"allenai/OLMo-1B-hf", "pythia"}
    # Both models have a checkpoint labelled "1000": each base checkpoint gets its own eval folder.
    base_folders = {eval_model_key(j, {}) for j in both.eval_jobs if j.model_kind == "base"}
    assert base_folders == {"base-allenai_OLMo-1B-hf-1000", "base-allenai_OLMo-1B-hf-main", "base-pythia-1000",
                            "base-pythia-143000"}
    assert len(both.eval_models()) == len(olmo.eval_models()) + len(pythia.eval_models())
    pythia_trial = next(t for t in both.trials if t.model_name == "pythia")
    assert pythia_trial.name.startswith("pythia-") and pythia_trial.to_json()["model_name"] == "pythia"
    json.dumps([c.to_json() for c in both.cells] + [j.to_json() for j in both.eval_jobs])  # plan.json holds them


def test_a_list_of_one_model_has_the_ids_of_model(paper_raw):
    single = build_plan(parse_spec(edited(paper_raw, model=OLMO)))
    listed = build_plan(parse_spec(_two_models(paper_raw, OLMO)))
    assert _ids(listed) == _ids(single)


def test_the_estimate_adds_each_models_work_at_its_own_size(paper_raw):
    olmo = estimate_plan(build_plan(parse_spec(edited(paper_raw, model=OLMO))))
    pythia = estimate_plan(build_plan(parse_spec(edited(paper_raw, model=PYTHIA))))
    both = estimate_plan(build_plan(parse_spec(_two_models(paper_raw, OLMO, PYTHIA))))
    assert both.train_flops == pytest.approx(olmo.train_flops + pythia.train_flops)
    assert both.eval_flops == pytest.approx(olmo.eval_flops + pythia.eval_flops)
    assert both.num_params == OLMO["num_params"]  # the largest sizes the hours' denominator and memory
    full = both.methods["full"]
    assert full.trials == olmo.methods["full"].trials + pythia.methods["full"].trials
    assert full.model_state_bytes == olmo.methods["full"].model_state_bytes


@pytest.mark.parametrize(("models", "expected"), [
    ([OLMO, OLMO], "models[1]: name 'allenai/OLMo-1B-hf' is already models[0]'s; give each model its own name"),
    ([OLMO, OLMO | {"name": "again"}],
     "models[1].checkpoints[0]: '1000' of 'allenai/OLMo-1B-hf' is already models[0]'s checkpoint '1000'; "
     "list each checkpoint once"),
    ([OLMO, PYTHIA | {"name": "allenai/OLMo-1B-hf", "checkpoints": ["main"]}],
     "models[1]: name 'allenai/OLMo-1B-hf' is already models[0]'s; give each model its own name"),
    ([OLMO | {"name": "a-b", "checkpoints": ["c"]}, PYTHIA | {"name": "a", "checkpoints": ["b-c"]}],
     "models[1].checkpoints[0]: its eval folder 'base-a-b-c' is also models[0]'s checkpoint 'c'; rename one"),
])
def test_models_that_would_share_results_are_refused(paper_raw, models, expected):
    assert problems(_two_models(paper_raw, *models)) == [expected]


def test_model_or_models_one_of_them(paper_raw):
    raw = _two_models(paper_raw, OLMO)
    raw["model"] = OLMO
    assert problems(raw) == ["models: give either model (one) or models (a list), not both"]
    raw.pop("model")
    raw.pop("models")
    assert problems(raw) == ["model: required field is missing (or give models: a list of models)"]
    assert problems(edited(paper_raw, model=None) | {"models": []}) != []


@pytest.mark.parametrize(("model", "expected"), [
    ({"checkpoint_family": "pythai"},
     "model.checkpoint_family: unknown checkpoint family 'pythai' (did you mean 'pythia'?)"),
    ({"revision_pattern": "ckpt_{stp}"}, "model.revision_pattern: revision_pattern 'ckpt_{stp}': unknown placeholder"),
    ({"checkpoint_family": "olmo", "revision_pattern": "ckpt_{step}"},
     "model.revision_pattern: give either checkpoint_family or revision_pattern, not both"),
    ({"tokens_per_step": 0}, "model.tokens_per_step: Input should be greater than or equal to 1"),
    ({"checkpoints": [1000, {"step": 5000, "stage": 2}]},
     "model.checkpoints[1]: olmo checkpoints have no stages (e.g. 'step738020-tokens3094B'); drop 'stage'"),
    ({"id": "HuggingFaceTB/SmolLM2-135M", "checkpoints": [{"step": 5000, "stage": 1}]},  # detected from the id
     "model.checkpoints[0]: smollm2 checkpoints have no stages"),
])
def test_family_fields_are_checked_naming_the_field(paper_raw, model, expected):
    (line,) = problems(edited(paper_raw, model=OLMO | model))
    assert line.startswith(expected), line


def test_a_family_error_in_a_list_names_the_models_index(paper_raw):
    (line,) = problems(_two_models(paper_raw, OLMO, PYTHIA | {"checkpoints": [{"step": 10, "stage": 1}]}))
    assert line.startswith("models[1].checkpoints[0]: pythia checkpoints have no stages"), line


def test_each_model_resolves_in_its_own_family(paper_raw):
    from ptft.study.checkpoints import RevisionResolver

    spec = parse_spec(_two_models(paper_raw, OLMO, PYTHIA | {"checkpoints": [1000]},
                                  {"id": "org/custom", "name": "custom", "checkpoints": [7],
                                   "revision_pattern": "ckpt_{step:03d}", "tokens_per_step": 1000}))
    listings = {"allenai/OLMo-1B-hf": ["main", "step1000-tokens4B", "step2000-tokens8B"],
                "EleutherAI/pythia-160m": ["main", "step1000", "step10000"], "org/custom": ["ckpt_007", "ckpt_070"]}
    resolver = RevisionResolver(list_branches=listings.__getitem__, families=spec.checkpoint_families())
    olmo, pythia, custom = spec.model_specs()
    got = {m.family: m.resolve(resolver, m.checkpoint_refs()[0], spec.base_dir) for m in (olmo, pythia, custom)}
    assert got == {"allenai/OLMo-1B-hf": ("allenai/OLMo-1B-hf", "step1000-tokens4B"),
                   "pythia": ("EleutherAI/pythia-160m", "step1000"), "custom": ("org/custom", "ckpt_007")}
    tokens = [m.tokens_seen(resolver, m.checkpoint_refs()[0], got[m.family][1]) for m in (olmo, pythia, custom)]
    assert tokens == [4.0, pytest.approx(1000 * 2_097_152 / 1e9), pytest.approx(7000 / 1e9)]
    assert olmo.tokens_seen(resolver, olmo.checkpoint_refs()[1], "main") is None  # "main" names no tokens
