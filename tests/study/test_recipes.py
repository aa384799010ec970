"""Recipes in the plan: stages are cells of a DAG whose ids hash their input, shared prefixes are one cell,
one-stage specs keep today's ids, and bad recipes fail naming the field."""

from __future__ import annotations

import pytest

from ptft.study.plan import build_plan
from ptft.study.spec import SpecError, parse_spec
from tests.study.conftest import edited

MNLI = {"kind": "sft", "datasets": ["mnli"], "formats": ["default"]}
XSUM = {"kind": "sft", "datasets": ["xsum"], "formats": ["default"], "max_steps": 5}
PAWS = {"kind": "sft", "datasets": ["paws"], "formats": ["default"]}


def _plan(raw: dict, recipes: dict, **paths):
    return build_plan(parse_spec(edited(raw, recipes=recipes, **paths)))


def test_a_recipe_is_a_chain_of_cells_and_shared_prefixes_train_once(smoke_raw):
    base = build_plan(parse_spec(smoke_raw))
    plan = _plan(smoke_raw, {"a": [MNLI, XSUM], "b": [MNLI, PAWS]})
    plain_ids = {c.cell_id for c in base.cells}
    # The recipes' first stage is the plain mnli/default cell: shared, not trained again.
    assert plain_ids <= {c.cell_id for c in plan.cells}
    stage2 = [c for c in plan.cells if c.stage == 2]
    assert sorted((c.train_dataset, c.checkpoint.label) for c in stage2) == [
        ("paws", "step50"), ("paws", "step600"), ("xsum", "step50"), ("xsum", "step600")]
    for cell in stage2:
        parent = plan.cell(cell.parent)
        assert parent.cell_id in plain_ids and parent.train_dataset == "mnli" and parent.checkpoint == cell.checkpoint
        assert cell.prior_stages == "sft:mnli/default" and not cell.plain and cell.last_in_recipe
        assert sorted(plan.cell(cell.parent).recipes) == ["a", "b"]
    assert len(plan.trials) == len(base.trials) + 2 * len(stage2)  # two lrs each; stage 1 counted once
    xsum = next(t for t in plan.trials if t.stage == 2 and t.train_dataset == "xsum")
    assert xsum.config.max_steps == 5 and xsum.parent_cell and xsum.name.startswith("s2-xsum-default-")


def test_a_stage_id_hashes_its_input(smoke_raw):
    two_lrs = _plan(smoke_raw, {"a": [MNLI, XSUM]})
    three_lrs = _plan(edited(smoke_raw, train__learning_rates=[1e-3, 3e-3, 1e-2]), {"a": [MNLI, XSUM]})
    stage2 = {c.checkpoint.label: c.cell_id for c in two_lrs.cells if c.stage == 2}
    moved = {c.checkpoint.label: c.cell_id for c in three_lrs.cells if c.stage == 2}
    assert stage2.keys() == moved.keys() and not set(stage2.values()) & set(moved.values())
    # A recipe whose first stage differs from the plain cell (its own steps) is a cell of its own.
    own = _plan(smoke_raw, {"a": [{**MNLI, "max_steps": 3}, XSUM]})
    assert len([c for c in own.cells if c.train_dataset == "mnli" and c.train_format == "default"]) == 4


def test_eval_after_last_scores_only_the_last_stage_and_plain_cells(smoke_raw):
    every = _plan(smoke_raw, {"a": [MNLI, XSUM]})
    last = _plan(smoke_raw, {"a": [{**MNLI, "max_steps": 3}, XSUM]}, eval__after="last")
    every_models = {j.cell_id for j in every.eval_jobs if j.cell_id}
    assert every_models == {c.cell_id for c in every.cells}
    last_models = {j.cell_id for j in last.eval_jobs if j.cell_id}
    middle = {c.cell_id for c in last.cells if c.stage == 1 and not c.plain}
    assert middle and not middle & last_models
    assert {c.cell_id for c in last.cells if c.stage == 2 or c.plain} == last_models


def test_plain_specs_keep_their_ids_with_recipes_beside_them(smoke_raw):
    base = build_plan(parse_spec(smoke_raw))
    plan = _plan(smoke_raw, {"a": [MNLI, XSUM]})
    plain = [c for c in plan.cells if c.plain]
    assert [c.cell_id for c in plain] == [c.cell_id for c in base.cells]
    base_trials = {t.trial_id for t in base.trials}
    assert base_trials <= {t.trial_id for t in plan.trials}
    assert {j.job_id for j in base.eval_jobs} <= {j.job_id for j in plan.eval_jobs}


def _problems(raw: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return info.value.problems


@pytest.mark.parametrize("recipes, expected", [
    ({"a": [{"kind": "rlhf", "dataset": "x"}]}, "unknown stage kind 'rlhf'"),
    ({"a": [{"kind": "sft"}]}, "an sft stage needs datasets"),
    ({"a": [{"kind": "continual_pt"}]}, "a continual_pt stage needs dataset"),
    ({"a": [{"kind": "sft", "datasets": ["mnli"], "beta": 0.1}]}, "not sft settings"),
    ({"a": [{"kind": "continual_pt", "dataset": "mnli"}]}, "'mnli' is a task, not a corpus"),
    ({"a": [{"kind": "dpo", "dataset": "mnli"}]}, "'mnli' is a task, not a preference set"),
    ({"a": [{"kind": "sft", "datasets": ["mlni"]}]}, "unknown dataset 'mlni'"),
    ({"a": []}, "a recipe needs at least one stage"),
    ({"a": [{**MNLI, "method": {"name": "prompt_tuning"}}, XSUM]}, "cannot feed a later stage"),
])
def test_bad_recipes_fail_naming_the_field(smoke_raw, recipes, expected):
    lines = _problems(edited(smoke_raw, recipes=recipes))
    assert any(expected in line and line.startswith("recipes") for line in lines), lines


def test_recipes_alone_need_no_train_datasets(smoke_raw):
    plan = _plan(edited(smoke_raw, train__datasets=[]), {"a": [MNLI, XSUM]})
    assert {c.stage for c in plan.cells} == {1, 2} and not any(c.plain for c in plan.cells)
    lines = _problems(edited(smoke_raw, train__datasets=[]))
    assert any("nothing to train" in line for line in lines), lines


def test_a_corpus_declared_in_the_spec_feeds_a_continual_pt_stage(smoke_raw, tmp_path):
    (tmp_path / "notes").mkdir()
    for split, n in (("train", 6), ("validation", 2)):
        (tmp_path / "notes" / f"{split}.jsonl").write_text(
            "".join(f'{{"body": "lab note {i}: the sample was stirred."}}\n' for i in range(n)))
    raw = edited(smoke_raw, corpora=[{"name": "lab_notes", "folder": "notes", "text_field": "body"}])
    spec = parse_spec(edited(raw, recipes={"a": [{"kind": "continual_pt", "dataset": "lab_notes", "max_steps": 2}]}),
                      base_dir=str(tmp_path))
    assert spec.corpora[0].folder == str(tmp_path / "notes")  # relative to the spec's folder
    from ptft.tasks.corpora import corpus_documents

    assert len(corpus_documents("lab_notes", "validation", "mini").texts) == 2
    plan = build_plan(spec)
    assert [c.train_dataset for c in plan.cells if c.objective.kind == "continual_pt"] == ["lab_notes"] * 2
    lines = _problems(edited(smoke_raw, corpora=[{"name": "lab_notes2", "text_field": "body"}]))
    assert any(line.startswith("corpora[0]") and "exactly one of folder and hub" in line for line in lines), lines


def test_a_dpo_stage_checks_its_pairs_in_the_preflight(smoke_raw, tmp_path):
    import json

    from ptft.core.tiny import build_tiny_model
    from ptft.study.preflight import check_plan_data

    for step in ("step50", "step600"):
        build_tiny_model(str(tmp_path / "ck" / step), seed=0)
    pairs = tmp_path / "data" / "preference_pairs"
    pairs.mkdir(parents=True)
    good = {"prompt": "Is the sky blue?", "chosen": " Yes.", "rejected": " No."}
    long = {"prompt": "word " * 200, "chosen": " Yes.", "rejected": " No."}
    for split, rows in (("train", [good, long]), ("test", [good])):
        (pairs / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = edited(smoke_raw, model__id=str(tmp_path / "ck" / "step600"), data__source=str(tmp_path / "data"),
                 model__checkpoints=[{"path": str(tmp_path / "ck" / s), "step": int(s[4:])} for s in ("step50", "step600")],
                 train__datasets=[], eval__datasets=["rte"],
                 recipes={"a": [{"kind": "dpo", "dataset": "preference_pairs", "max_length": 64}]})
    plan = build_plan(parse_spec(raw))
    with pytest.raises(ValueError, match=r"line 2") as info:
        check_plan_data(plan)
    assert "max_length" in str(info.value)


def test_an_sft_stage_on_a_dataset_without_the_sections_formats_is_named(smoke_raw):
    """train.formats lists instruct; Tulu has only default: the stage is named, not a traceback."""
    from ptft.study.spec import SpecError, parse_spec
    from tests.study.conftest import edited

    with pytest.raises(SpecError) as err:
        parse_spec(edited(smoke_raw, recipes={"chat": [{"kind": "sft", "datasets": ["tulu"]}]}))
    assert str(err.value).splitlines()[-1].strip() == (
        "recipes.chat[0].datasets[0]: dataset 'tulu' has no format(s) ['instruct'] in fixed mode (it has "
        "['default']); set the stage's formats: or the dataset's")
    ok = parse_spec(edited(smoke_raw, recipes={"chat": [{"kind": "sft", "datasets": ["tulu"], "formats": ["default"]}]}))
    assert ok.recipes["chat"][0].formats == ["default"]
