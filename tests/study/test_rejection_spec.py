"""rejection_sampling stages in the spec and the plan: their fields, their errors before anything runs, and
cell ids that hash the sampling definition and the input model."""

from __future__ import annotations

import pytest

from evals.rejection import RejectionConfig
from evals.reward_model import RewardModel
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
    assert "'label' scores a label or a choice; 'xsum' is a generation task" in \
        _error(smoke_raw, {**RS, "reward": "label"})
    assert "'label' scores a label or a choice; 'tulu' is a chat task" in \
        _error(smoke_raw, {**RS, "dataset": "tulu", "reward": "label"})
    assert "reward.model_name" in _error(smoke_raw, {**RS, "reward": {"model_name": "org/rm"}})
    assert "reward.input" in _error(smoke_raw, {**RS, "reward": {"model": "org/rm", "input": "messages"}})
    assert "reward.batch_size" in _error(smoke_raw, {**RS, "reward": {"model": "org/rm", "batch_size": 0}})
    assert "samples" in _error(smoke_raw, {**RS, "samples": 0})
    assert "temperature" in _error(smoke_raw, {**RS, "temperature": 0})
    assert "top_p" in _error(smoke_raw, {**RS, "top_p": 1.5})
    assert "needs dataset" in _error(smoke_raw, {"kind": "rejection_sampling"})
    assert "unknown task 'nope'" in _error(smoke_raw, {**RS, "dataset": "nope"})
    assert "samples is a rejection_sampling setting" in _error(smoke_raw, {**XSUM_SFT, "samples": 4})
    assert "did you mean 'rejection_sampling'" in _error(smoke_raw, {**RS, "kind": "rejection_sample"})


def test_a_chat_prompt_set_and_a_reward_model_by_hub_id(smoke_raw):
    """The issue's recipe: sft on tulu, rejection sampling on tulu's prompts scored by a reward model, dpo."""
    reward = {"model": "OpenAssistant/reward-model-deberta-v3-large-v2", "revision": "main", "input": "pair",
              "batch_size": 4}
    recipe = [{"kind": "sft", "datasets": ["tulu"], "formats": ["default"], "max_steps": 2},
              {"kind": "rejection_sampling", "dataset": "tulu", "samples": 2, "reward": reward},
              {"kind": "dpo", "dataset": "ultrafeedback"}]
    plan = _plan(smoke_raw, {"llama-style": recipe})
    rs_cells = [c for c in plan.cells if c.rejection]
    assert len(rs_cells) == len({c.checkpoint for c in plan.cells})  # one per checkpoint
    rs = rs_cells[0]
    assert rs.rejection.reward == RewardModel(model=reward["model"], revision="main", input="pair")
    assert rs.rejection.reward_batch_size == 4 and rs.rejection.reward_name == reward["model"]
    dpo = [c for c in plan.cells if c.objective.kind == "dpo" and c.checkpoint == rs.checkpoint]
    assert dpo and all(c.parent == rs.cell_id and c.prior_stages == "sft:tulu/default>rejection_sampling:tulu" for c in dpo)
    # what defines the reward moves the id; the batch size it is scored in does not
    def rs_id(**changes):
        stage = {**recipe[1], "reward": {**reward, **changes}}
        return next(c.cell_id for c in _plan(smoke_raw, {"llama-style": [recipe[0], stage]}).cells
                    if c.rejection and c.checkpoint == rs.checkpoint)
    assert rs_id() == rs.cell_id and rs_id(batch_size=16) == rs.cell_id
    assert len({rs.cell_id, rs_id(model="org/other-rm"), rs_id(revision="v2"), rs_id(input="text"),
                rs_id(max_length=512)}) == 5
    # a chat task is scored against its gold reply by default
    metric = _plan(smoke_raw, {"r": [{"kind": "rejection_sampling", "dataset": "tulu"}]})
    assert next(c for c in metric.cells if c.rejection).rejection.reward == "rougeL"


def test_a_local_reward_model_enters_by_its_files(smoke_raw, tmp_path):
    from ptft.core.tiny import build_tiny_reward_model

    folder = build_tiny_reward_model(str(tmp_path / "rm"))
    stage = {**RS, "reward": {"model": "rm"}}
    def rs_cells():
        raw = edited(smoke_raw, recipes={"a": [stage]})
        return [c for c in build_plan(parse_spec(raw, base_dir=str(tmp_path))).cells if c.rejection][0]
    cell = rs_cells()
    assert cell.rejection.reward.model == folder and cell.rejection.reward.files_digest
    with open(tmp_path / "rm" / "extra.json", "w") as f:  # the folder was re-exported: another reward
        f.write("{}")
    assert rs_cells().cell_id != cell.cell_id
    with pytest.raises(SpecError, match="reward.revision: 'rm' is a local folder"):
        parse_spec(edited(smoke_raw, recipes={"a": [{**RS, "reward": {"model": "rm", "revision": "v1"}}]}),
                   base_dir=str(tmp_path))


def test_the_preflight_checks_the_reward_model(smoke_raw, tmp_path):
    from ptft.core.tiny import build_tiny_model, build_tiny_reward_model
    from ptft.study.preflight import PreflightError, check_reward_models

    build_tiny_reward_model(str(tmp_path / "rm"))
    build_tiny_model(str(tmp_path / "lm"))

    def check(model: str, **reward) -> None:
        raw = edited(smoke_raw, recipes={"a": [{**RS, "reward": {"model": model, **reward}}]})
        check_reward_models(build_plan(parse_spec(raw, base_dir=str(tmp_path))))

    check("rm")
    check("rm", input="pair")
    with pytest.raises(PreflightError, match=r"reward.model: folder .*/missing does not exist"):
        check("./missing")
    with pytest.raises(PreflightError, match="is a OlmoForCausalLM, not a sequence classifier"):
        check("lm")
    with pytest.raises(PreflightError, match="input chat_template, but its tokenizer has no chat template"):
        check("rm", input="chat_template")
    # a hub id is looked up when about to run: offline and not cached, it says so
    with pytest.raises(PreflightError, match="org-that-is-not/there.*config does not load"):
        check("org-that-is-not/there")


def test_the_pipeline_iterated_plans_each_round_as_its_own_cells(smoke_raw):
    """Llama 3.1 iterates SFT -> rejection sampling -> DPO: a second round's stages are new cells, each
    starting from the round before, with the lineage spelled out."""
    rs = {"kind": "rejection_sampling", "dataset": "tulu", "samples": 2}
    dpo = {"kind": "dpo", "dataset": "ultrafeedback"}
    plan = _plan(smoke_raw, {"rounds": [{"kind": "sft", "datasets": ["tulu"], "formats": ["default"]},
                                        rs, dpo, rs, dpo]})
    checkpoint = next(c.checkpoint for c in plan.cells if c.recipes)
    chain = sorted((c for c in plan.cells if c.checkpoint == checkpoint and "rounds" in c.recipes),
                   key=lambda c: c.stage)
    assert [c.stage for c in chain] == [1, 2, 3, 4, 5]
    assert all(b.parent == a.cell_id for a, b in zip(chain, chain[1:], strict=False))
    assert len({c.cell_id for c in chain}) == 5 and chain[1].rejection == chain[3].rejection
    assert chain[4].prior_stages == ("sft:tulu/default>rejection_sampling:tulu>dpo:ultrafeedback>"
                                     "rejection_sampling:tulu")
