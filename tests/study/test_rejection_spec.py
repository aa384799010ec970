"""rejection_sampling stages in the spec and the plan: their fields, their errors before anything runs, and
cell ids that hash the sampling definition and the input model."""

from __future__ import annotations

import pytest

from evals.rejection import RejectionConfig
from ptft.study.plan import build_plan
from ptft.study.spec import SpecError, parse_spec
from tests.study.conftest import edited

XSUM_SFT = {"kind": "sft", "datasets": ["xsum"], "formats": ["default"], "max_steps": 5}
RS = {"kind": "rejection_sampling", "dataset": "xsum", "samples": 4, "temperature": 0.8, "top_p": 0.9,
      "seed": 1, "reward": "rougeL", "threshold": 0.1, "max_new_tokens": 16, "max_steps": 3}


def _plan(raw: dict, recipes: dict, **paths):
    return build_plan(parse_spec(edited(raw, recipes=recipes, **paths)))


def _error(raw: dict, stage: dict) -> str:
    with pytest.raises(SpecError) as err:
        parse_spec(edited(raw, recipes={"a": [stage]}))
    return str(err.value)


def test_a_rejection_sampling_stage_is_an_sft_cell_on_its_kept_set(smoke_raw):
    plan = _plan(smoke_raw, {"a": [XSUM_SFT, RS]})
    rs = [c for c in plan.cells if c.rejection is not None]
    assert len(rs) == 2 and all(c.stage == 2 and c.parent for c in rs)
    cell = rs[0]
    assert cell.rejection == RejectionConfig(dataset="xsum", fmt="default", samples=4, temperature=0.8, top_p=0.9,
                                             seed=1, reward="rougeL", threshold=0.1, max_new_tokens=16)
    assert cell.objective.kind == "sft" and cell.train_dataset == "xsum" and cell.label.startswith("s2-rs-xsum")
    assert cell.step_name == "rejection_sampling:xsum"
    trials = plan.trials_of(cell.cell_id)
    assert trials and all(t.rejection == cell.rejection and t.data_mode == "fixed" and t.config.max_steps == 3
                          and t.stage_kind == "rejection_sampling" for t in trials)
    assert cell.to_json()["rejection"]["samples"] == 4
    # a classification task samples its label by default
    mnli = _plan(smoke_raw, {"b": [{"kind": "rejection_sampling", "dataset": "mnli"}]})
    assert next(c for c in mnli.cells if c.rejection).rejection.reward == "label"


@pytest.mark.parametrize("field,value", [("samples", 8), ("temperature", 0.5), ("top_p", 0.5), ("seed", 2),
                                         ("reward", "f1"), ("threshold", 0.5), ("max_new_tokens", 8),
                                         ("prompts", 10)])
def test_every_sampling_field_moves_the_cell_id(smoke_raw, field, value):
    ids = {c.cell_id for c in _plan(smoke_raw, {"a": [XSUM_SFT, RS]}).cells if c.rejection}
    moved = {c.cell_id for c in _plan(smoke_raw, {"a": [XSUM_SFT, {**RS, field: value}]}).cells if c.rejection}
    assert ids and moved and not ids & moved


def test_its_id_hashes_its_input(smoke_raw):
    after_sft = {c.cell_id for c in _plan(smoke_raw, {"a": [XSUM_SFT, RS]}).cells if c.rejection}
    first = {c.cell_id for c in _plan(smoke_raw, {"a": [RS]}).cells if c.rejection}
    other_parent = {c.cell_id for c in _plan(smoke_raw, {"a": [{**XSUM_SFT, "max_steps": 6}, RS]}).cells
                    if c.rejection}
    assert len(after_sft | first | other_parent) == 6


def test_bad_stages_fail_before_anything_runs(smoke_raw):
    assert "unknown reward metric 'rouge' (did you mean 'rougeL'?); known: rougeL, exact_match, f1, label" in \
        _error(smoke_raw, {**RS, "reward": "rouge"})
    assert "a reward model is not supported yet" in _error(smoke_raw, {**RS, "reward": {"model": "org/rm"}})
    assert "'label' scores a classification task's label; 'xsum' is a generation task" in \
        _error(smoke_raw, {**RS, "reward": "label"})
    assert "samples" in _error(smoke_raw, {**RS, "samples": 0})
    assert "temperature" in _error(smoke_raw, {**RS, "temperature": 0})
    assert "top_p" in _error(smoke_raw, {**RS, "top_p": 1.5})
    assert "needs dataset" in _error(smoke_raw, {"kind": "rejection_sampling"})
    assert "unknown task 'nope'" in _error(smoke_raw, {**RS, "dataset": "nope"})
    assert "samples is a rejection_sampling setting" in _error(smoke_raw, {**XSUM_SFT, "samples": 4})
    assert "did you mean 'rejection_sampling'" in _error(smoke_raw, {**RS, "kind": "rejection_sample"})
