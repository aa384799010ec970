"""Every class of bad spec fails before anything runs, naming the field, the value and what is allowed."""

import pytest

from ptft.study.spec import SpecError, load_spec, parse_spec
from tests.study.conftest import edited


def problems(raw: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return info.value.problems


def test_paper_and_smoke_configs_are_valid(paper_raw, smoke_raw):
    assert parse_spec(paper_raw).name == "amuro-char"
    assert parse_spec(smoke_raw).data.source == "mini"


def test_unknown_dataset_names_index_and_suggests(paper_raw):
    raw = edited(paper_raw, train__datasets=["mnli", "paws", "mlni"])
    (line,) = problems(raw)
    assert line.startswith("train.datasets[2]: unknown dataset 'mlni' (did you mean 'mnli'?); known: ")
    assert "mnli, mnli_matched" in line and "xsum" in line  # every valid name, sorted


def test_unknown_eval_dataset(paper_raw):
    raw = edited(paper_raw, eval__datasets=["mnli_matched", "xsun"])
    (line,) = problems(raw)
    assert line.startswith("eval.datasets[1]: unknown dataset 'xsun'") and "'xsum'" in line


def test_unknown_keys_are_errors_with_suggestion(paper_raw):
    raw = edited(paper_raw)
    raw["train"]["learnig_rates"] = [1e-5]
    raw["evals"] = {}
    lines = problems(raw)
    assert any(line.startswith("train.learnig_rates: unknown key (did you mean 'learning_rates'?)")
               for line in lines), lines
    assert any(line.startswith("evals: unknown key (did you mean 'eval'?)") for line in lines), lines


def test_eval_only_dataset_cannot_be_trained_on(paper_raw):
    raw = edited(paper_raw, train__datasets=["mnli_matched"])
    (line,) = problems(raw)
    assert line.startswith("train.datasets[0]:") and "eval-only" in line


def test_unknown_format_suggests(paper_raw):
    raw = edited(paper_raw, train__formats=["default", "instrct"])
    (line,) = problems(raw)
    assert line.startswith("train.formats[1]: unknown format 'instrct' (did you mean 'instruct'?)")
    assert "allowed" in line


def test_dataset_without_the_format(paper_raw):
    raw = edited(paper_raw, train__formats=["default", "io"])  # tulu (chat) has no io format
    (line,) = problems(raw)
    assert line.startswith("train.datasets[4]: dataset 'tulu' has no format(s) ['io'] in faithful mode")
    assert "set datasets[4].formats" in line


@pytest.mark.parametrize("lrs, expected", [
    ([], "needs at least one learning rate"),
    ([2e-6, -1.0], "learning rate -1.0 is not a number in (0, 1)"),
    ([2e-6, 2e-6], "duplicate learning rates"),
    ({"log_uniform": [1e-4, 1e-6], "samples": 3}, "needs 0 < low < high"),
])
def test_bad_learning_rates(paper_raw, lrs, expected):
    raw = edited(paper_raw, train__learning_rates=lrs)
    lines = problems(raw)
    assert all(line.startswith("train.learning_rates") for line in lines), lines
    assert any(expected in line for line in lines), lines


def test_bad_literal_names_value_and_allowed(paper_raw):
    raw = edited(paper_raw, train__zero_stage=4, eval__mode="faithfull", train__precision="fp16")
    lines = problems(raw)
    assert "train.zero_stage: Input should be 0, 1, 2 or 3 (got 4)" in lines
    assert "eval.mode: Input should be 'faithful' or 'fixed' (got 'faithfull')" in lines
    assert "train.precision: Input should be 'auto', 'bf16' or 'fp32' (got 'fp16')" in lines


@pytest.mark.parametrize("dotted, value, start", [
    ("eval__shots", [4, -1], "eval.shots"),
    ("train__warmup_ratio", 1.5, "train.warmup_ratio"),
    ("train__epochs", 0, "train.epochs"),
    ("resources__gpus_per_worker", -1, "resources.gpus_per_worker"),
    ("resources__max_concurrent_trials", 0, "resources.max_concurrent_trials"),
    ("storage", "hdfs://cluster/x", "storage"),
    ("name", "has spaces", "name"),
    ("model__checkpoints", [1000, 1000], "model.checkpoints"),
    ("model__checkpoints", [1000, -5], "model.checkpoints[1]"),
    ("model__checkpoints", [], "model.checkpoints"),
])
def test_out_of_range_values(paper_raw, dotted, value, start):
    lines = problems(edited(paper_raw, **{dotted: value}))
    assert lines and all(line.startswith(start) for line in lines), lines


def test_missing_section(paper_raw):
    raw = edited(paper_raw)
    del raw["train"]
    assert problems(raw) == ["train: required field is missing"]


def test_secrets_are_refused(paper_raw):
    raw = edited(paper_raw, wandb={"project": "p", "api_key": "abc123"})
    (line,) = problems(raw)
    assert "WANDB_API_KEY" in line and "abc123" not in line


def test_eval_format_no_dataset_has(paper_raw):
    raw = edited(paper_raw, eval__datasets=["arc_easy", "hellaswag"], eval__formats=["io"])
    (line,) = problems(raw)
    assert line == "eval.formats: no eval dataset supports format 'io'"


def test_all_problems_reported_at_once(paper_raw):
    raw = edited(paper_raw, train__zero_stage=9, storage="ftp://x", train__datasets=["mlni"])
    assert len(problems(raw)) == 3


def test_file_errors(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load_spec(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="top level must be a mapping"):
        load_spec(str(bad))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(str(broken))


def test_cli_overrides(tmp_path):
    from tests.study.conftest import PAPER

    spec = load_spec(PAPER, ["train.epochs=1", "eval.shots=[0, 4]"])
    assert spec.train.epochs == 1 and spec.eval.shots == [0, 4]
    with pytest.raises(SpecError, match="expected key=value"):
        load_spec(PAPER, ["train.epochs"])
