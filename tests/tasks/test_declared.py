"""Tasks users declare (docs/tasks.md): byte-identical to the built-ins declared the same way, registered
across processes, identified by their template text and data, and refused with errors naming the field."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from ptft.tasks import (
    FORMATS,
    DataError,
    DeclarationConflict,
    TaskDeclaration,
    TaskDeclarationError,
    UnknownTaskError,
    declarations_from_spec_value,
    declared_tasks,
    eval_set,
    get_task,
    load_task_file,
    register_declared,
    template_version,
    training_set,
)
from ptft.tasks.metrics import exact_match, f1, normalize_answer, rouge_l, text_metric

REPO = Path(__file__).resolve().parents[2]
RTE_FILE = REPO / "configs" / "tasks" / "rte_declared.yaml"
MINI = REPO / "ptft" / "tasks" / "mini" / "data"

pytestmark = pytest.mark.usefixtures("isolated_registry")


def _rte_raw() -> dict[str, Any]:
    """The YAML mapping of configs/tasks/rte_declared.yaml's declaration, to edit per test."""
    return yaml.safe_load(RTE_FILE.read_text())["tasks"][0]


def _as(tmp_path: Path, task: str, name: str) -> str:
    """A folder source holding the mini data of `task` under the name `name` (<name>/<split>.jsonl)."""
    shutil.copytree(MINI / task, tmp_path / name)
    return str(tmp_path)


def _train_view(rendered: Any) -> list[tuple[Any, ...]]:
    """Everything of a training set except the task name in the example ids."""
    return [(r.example_id.split("/", 1)[1], r.prompt, r.completion, [(s.text, s.train, s.eos) for s in r.segments],
             r.gold_index, r.candidates) for r in rendered.examples]


def _eval_view(evals: Any) -> list[tuple[Any, ...]]:
    return [(e.example_id.split("/", 1)[1], e.context, e.target, e.gold_index, e.candidates, e.shots_used,
             e.shots_dropped) for e in evals.examples] + [(evals.stop_sequences, evals.split, evals.counts)]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


# --- the same task, declared -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_declared_rte_renders_byte_identically_to_the_builtin(tmp_path: Path, fmt: str) -> None:
    (declaration,) = load_task_file(RTE_FILE)
    register_declared(declaration)
    source = _as(tmp_path, "rte", "rte_declared")  # the hub-declared task read from a folder, as a built-in is
    builtin, mine = training_set("rte", fmt, source="mini"), training_set("rte_declared", fmt, source=source)
    assert _train_view(mine) == _train_view(builtin) and mine.counts == builtin.counts
    for shots in (0, 2, 4):
        assert _eval_view(eval_set("rte_declared", fmt, "fixed", shots, source=source)) == _eval_view(
            eval_set("rte", fmt, "fixed", shots, source="mini"))
    # the budget rule too: shots dropped oldest-first until the context (and the longest candidate) fits
    budget = {"count_tokens": len, "max_tokens": 300}
    builtin_budget = eval_set("rte", fmt, "fixed", 4, source="mini", **budget)
    assert builtin_budget.counts["shots_dropped"] > 0
    assert _eval_view(eval_set("rte_declared", fmt, "fixed", 4, source=source, **budget)) == _eval_view(builtin_budget)


def test_declared_multiple_choice_renders_byte_identically_to_arc(tmp_path: Path) -> None:
    declaration = TaskDeclaration.model_validate({
        "name": "arc_declared", "type": "multiple_choice", "source": {"hub": "allenai/ai2_arc", "config": "ARC-Easy"},
        "splits": {"eval": "validation", "fewshot": "train"},
        "columns": {"question": "question", "choices": "choices.text", "choice_labels": "choices.label",
                    "answer": "answerKey"},
        "templates": {"default": "Question: {question}\nAnswer:"}})
    spec = register_declared(declaration)
    assert spec.metric == "acc" and spec.task_type == "multiple_choice"  # scored as the built-in MC tasks are
    source = _as(tmp_path, "arc_easy", "arc_declared")
    for shots in (0, 3):
        assert _eval_view(eval_set("arc_declared", "default", "fixed", shots, source=source)) == _eval_view(
            eval_set("arc_easy", "default", "fixed", shots, source="mini"))


def test_multiple_choice_by_index(tmp_path: Path) -> None:
    rows = [{"q": "2 + 2?", "options": ["3", "4", "5"], "gold": 1}, {"q": "1 + 2?", "options": ["3", "4"], "gold": "0"}]
    _write_jsonl(tmp_path / "dev.jsonl", rows)
    _write_jsonl(tmp_path / "bad.jsonl", [{"q": "?", "options": ["a", "b"], "gold": 2}])
    raw = {"name": "sums_mc", "type": "multiple_choice", "source": {"folder": str(tmp_path)},
           "splits": {"eval": "dev"}, "columns": {"question": "q", "choices": "options", "answer": "gold"},
           "templates": {"default": "Q: {question}\nA:", "instruct": "Answer this: {question}"}}
    register_declared(TaskDeclaration.model_validate(raw))
    evals = eval_set("sums_mc", "instruct", "fixed", 1)  # the shot comes from the eval split, and is not scored
    assert len(evals.examples) == 1 and evals.counts["shot_rows_excluded"] == 1
    (item,) = evals.examples
    assert item.candidates[item.gold_index] == {"2 + 2?": " 4", "1 + 2?": " 3"}[item.context.rsplit(": ", 1)[1]]
    register_declared(TaskDeclaration.model_validate({**raw, "name": "bad_mc", "splits": {"eval": "bad"}}))
    with pytest.raises(DataError, match=r"bad\.jsonl:1: .*field 'gold': label outside the label set: 2 is not an index"):
        eval_set("bad_mc", "default", "fixed", 0)


def test_a_folder_source_is_read_whatever_the_run_source(tmp_path: Path) -> None:
    shutil.copytree(MINI / "rte", tmp_path / "data" / "rte")
    raw = {**_rte_raw(), "name": "rte_folder", "source": {"folder": "data/rte"}}  # relative to the spec's folder
    (declaration,) = declarations_from_spec_value([raw], base_dir=tmp_path)
    assert declaration.source.folder == str((tmp_path / "data" / "rte").resolve())
    register_declared(declaration)
    for source in ("hub", "mini"):  # neither downloads nor looks in the minis: the folder is the data
        assert _train_view(training_set("rte_folder", "io", source=source)) == _train_view(
            training_set("rte", "io", source="mini"))
        assert _eval_view(eval_set("rte_folder", "default", "fixed", 2, source=source)) == _eval_view(
            eval_set("rte", "default", "fixed", 2, source="mini"))


def test_chat_declared_trains_like_tulu(tmp_path: Path) -> None:
    declaration = TaskDeclaration.model_validate({
        "name": "chat_declared", "type": "chat", "source": {"folder": str(MINI / "tulu")},
        "splits": {"train": "train"}, "columns": {"messages": "messages"}, "train_subset_size": None})
    register_declared(declaration)
    mine = {r.example_id.split("/", 1)[1]: r for r in training_set("chat_declared", "default").examples}
    builtin = training_set("tulu", "default", source="mini").examples
    assert builtin and all(mine[r.example_id.split("/", 1)[1]].segments == r.segments for r in builtin)


def test_the_example_task_file_declares_tasks_that_render() -> None:
    summaries, trivia = load_task_file(REPO / "configs" / "tasks" / "examples.yaml")
    assert (summaries.name, trivia.name) == ("mini_summaries", "trivia_qa_em")
    register_declared(summaries)
    register_declared(trivia)
    assert get_task("trivia_qa_em").metric == "exact_match" and get_task("trivia_qa_em").formats == ("default", "instruct")
    evals = eval_set("mini_summaries", "default", "fixed", 1, source="hub")  # its folder: nothing downloaded
    assert evals.examples and evals.stop_sequences == ("\n", "\n###", "\n ###", "\n\n")
    assert training_set("mini_summaries", "io").counts["subset"] == 400  # train_subset_size: null keeps all


def test_declared_tasks_render_in_fixed_mode_only() -> None:
    (declaration,) = load_task_file(RTE_FILE)
    spec = register_declared(declaration)
    assert spec.formats == FORMATS and spec.faithful_formats == ()
    with pytest.raises(ValueError, match="fixed mode only"):
        training_set("rte_declared", "default", "faithful", source="mini")
    with pytest.raises(ValueError, match="fixed mode only"):
        template_version("rte_declared", "default", "faithful")


def test_text_label_values(tmp_path: Path) -> None:
    rows = [{"text": "good film", "sentiment": "pos"}, {"text": "dull film", "sentiment": "neg"}]
    _write_jsonl(tmp_path / "train.jsonl", rows)
    _write_jsonl(tmp_path / "test.jsonl", rows + [{"text": "so-so", "sentiment": "meh"}])
    register_declared(TaskDeclaration.model_validate({
        "name": "sentiment", "type": "classification", "source": {"folder": str(tmp_path)},
        "splits": {"train": "train", "eval": "test"}, "columns": {"text": "text", "label": "sentiment"},
        "templates": {"default": "Review: {text}\nSentiment:"},
        "label_words": ["positive", "negative"], "label_values": ["pos", "neg"]}))
    train = training_set("sentiment", "default")
    assert sorted(r.completion for r in train.examples) == ["negative", "positive"]
    assert get_task("sentiment").chance_level == 0.5
    with pytest.raises(DataError, match=r"test\.jsonl:3: .*field 'sentiment': label outside the label set"):
        eval_set("sentiment", "default", "fixed", 0)


# --- generation and its metrics --------------------------------------------------------------------


def _qa_task(tmp_path: Path, **extra: Any) -> TaskDeclaration:
    rows = [{"q": f"what is {a} plus {b}?", "a": f"{a + b}"} for a in range(3) for b in range(3)]
    _write_jsonl(tmp_path / "qa" / "train.jsonl", rows[:5])
    _write_jsonl(tmp_path / "qa" / "dev.jsonl", rows[5:])
    return TaskDeclaration.model_validate({
        "name": "sums", "type": "generation", "source": {"folder": str(tmp_path / "qa")},
        "splits": {"train": "train", "eval": "dev"}, "columns": {"question": "q", "target": "a"},
        "templates": {"default": "### Question: {question}\n ### Answer:", "io": "{question}"}, **extra})


def test_generation_task_with_rouge_l(tmp_path: Path) -> None:
    spec = register_declared(_qa_task(tmp_path, single_line_target=True))
    assert spec.metric == "rougeL" and text_metric(spec.metric) is rouge_l
    evals = eval_set("sums", "default", "fixed", 1)
    first = evals.examples[0]
    shot = next(r for r in training_set("sums", "default").examples if first.context.startswith(r.prompt))
    assert first.context == f"{shot.prompt} {shot.completion}\n\n### Question: what is 1 plus 2?\n ### Answer:"
    assert first.target == "3" and first.candidates == ()
    assert evals.stop_sequences == ("\n", "\n###", "\n ###", "\n\n")  # the default format's, single line
    assert rouge_l("the answer is 3", first.target) == pytest.approx(2 * (1 / 4) * 1 / (1 / 4 + 1))
    sft = training_set("sums", "io").examples[0].segments
    assert [s.train for s in sft] == [False, True] and sft[1].text.startswith(" ")  # the join space is trained


def test_declared_stop_sequences_and_exact_match(tmp_path: Path) -> None:
    spec = register_declared(_qa_task(tmp_path, stop=["\n", "Question:"], metric="exact_match"))
    assert eval_set("sums", "io", "fixed", 0).stop_sequences == ("\n", "Question:")
    assert text_metric(spec.metric)("  3.", "3") == 1.0


@pytest.mark.parametrize(("prediction", "reference", "em", "f1_score"), [
    ("The Cat!", "cat", 1.0, 1.0),  # case, punctuation and articles go
    ("the cat sat", "a cat sat on the mat", 0.0, 2 * 1.0 * 0.5 / 1.5),  # precision 2/2, recall 2/4
    ("Paris, France", "paris", 0.0, 2 * 0.5 * 1.0 / 1.5),
    ("blue", "red", 0.0, 0.0),
    ("", "", 1.0, 1.0),  # both normalise to nothing: SQuAD v2.0 counts that a match
    ("the", "an", 1.0, 1.0),
    ("", "red", 0.0, 0.0),
])
def test_exact_match_and_f1_on_known_strings(prediction: str, reference: str, em: float, f1_score: float) -> None:
    assert exact_match(prediction, reference) == em
    assert f1(prediction, reference) == pytest.approx(f1_score)


def test_squad_normalisation() -> None:
    assert normalize_answer("  The  Quick, brown fox's  ") == "quick brown foxs"


# --- identity: the template text and the data are in the ids ---------------------------------------


def _version(raw: dict[str, Any], name: str, fmt: str = "default") -> str:
    register_declared(TaskDeclaration.model_validate({**raw, "name": name}))
    return template_version(name, fmt, "fixed")


def test_template_text_and_defining_fields_move_template_version() -> None:
    raw = _rte_raw()
    base = _version(raw, "v_base")
    assert _version(raw, "v_same") == base  # the same declaration under another name: the same rendering
    spaced = {**raw, "templates": {**raw["templates"], "default": raw["templates"]["default"] + " "}}
    assert _version(spaced, "v_space") != base  # one trailing space
    assert _version(spaced, "v_space", "instruct") == _version(raw, "v_base", "instruct")  # only its format moves
    for i, change in enumerate([{"label_words": ["entailment", "not_entailment"]},
                                {"source": {"hub": "nyu-mll/glue", "config": "mnli"}},
                                {"splits": {**raw["splits"], "eval": "test"}},
                                {"train_subset_size": 100}, {"chance_level": 0.4}]):
        assert _version({**raw, **change}, f"v_change{i}") != base, change
    assert _version({**raw, "description": "other words", "tokens_per_example": 5}, "v_notes") == base
    assert template_version("rte", "default", "fixed") != base  # a built-in's version is its own


def test_a_folder_source_is_identified_by_its_bytes_not_its_path(tmp_path: Path) -> None:
    raw = {**_rte_raw(), "source": {"folder": "rte"}}
    for copy in ("a", "b"):
        shutil.copytree(MINI / "rte", tmp_path / copy / "rte")
    (in_a,) = declarations_from_spec_value([raw], tmp_path / "a")
    (in_b,) = declarations_from_spec_value([raw], tmp_path / "b")
    assert in_a.task_spec().declaration_digest == in_b.task_spec().declaration_digest
    with open(tmp_path / "b" / "rte" / "validation.jsonl", "a") as f:
        f.write(json.dumps({"sentence1": "x.", "sentence2": "y.", "label": 0}) + "\n")
    assert in_a.task_spec().declaration_digest != in_b.task_spec().declaration_digest


# --- registration ---------------------------------------------------------------------------------


def test_registration_is_idempotent_and_a_different_declaration_is_refused() -> None:
    (declaration,) = load_task_file(RTE_FILE)
    first = register_declared(declaration)
    again = TaskDeclaration.model_validate({**_rte_raw(), "declared_in": "spec.yaml tasks[0]"})
    assert register_declared(again) is first and get_task("rte_declared") is first
    assert declared_tasks() == {"rte_declared": declaration}
    other = TaskDeclaration.model_validate({**_rte_raw(), "metric": "accuracy", "chance_level": 0.4,
                                            "declared_in": "spec.yaml tasks[1]"})
    with pytest.raises(DeclarationConflict) as err:
        register_declared(other)
    message = str(err.value)
    assert "'rte_declared' is declared twice" in message and "spec.yaml tasks[1]" in message
    assert str(RTE_FILE) in message or "configs/tasks/rte_declared.yaml" in message
    assert "differ in chance_level" in message


def _render_in_fresh_process(pickled: bytes, source: str) -> tuple[bool, str, str]:
    """In a spawned process (a Ray worker's situation): the task is unknown until its declaration arrives."""
    from ptft import tasks

    try:
        tasks.get_task("rte_declared")
        unknown = False
    except UnknownTaskError:
        unknown = True
    tasks.register_declared(pickle.loads(pickled))
    evals = tasks.eval_set("rte_declared", "instruct", "fixed", 2, source=source)
    return unknown, evals.checksum, evals.template_version


def test_a_declaration_travels_to_a_process_that_never_saw_the_file(tmp_path: Path) -> None:
    (declaration,) = load_task_file(RTE_FILE)
    register_declared(declaration)
    source = _as(tmp_path, "rte", "rte_declared")
    here = eval_set("rte_declared", "instruct", "fixed", 2, source=source)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        unknown, checksum, version = pool.submit(_render_in_fresh_process, pickle.dumps(declaration), source).result()
    assert unknown and (checksum, version) == (here.checksum, here.template_version)


# --- errors, each naming the file, the task and the field ------------------------------------------

ERRORS = [
    ({"templates": {"default": "### Input_1: {premse}\n ### Inference: "}},
     "templates.default: placeholder {premse} names no column (did you mean 'premise'?)"),
    ({"templates": {"default": "{premise} => {label}"}}, "templates.default: placeholder {label} is the gold answer"),
    ({"templates": {"io": "{premise!r}"}}, "templates.io: placeholder {premise!r} is not a plain {field}"),
    ({"templates": {"io": "{premise} }"}}, "templates.io: Single '}' encountered"),
    ({"templates": {"instuct": "{premise}"}}, "templates: unknown format 'instuct' (did you mean 'instruct'?)"),
    ({"label_words": []}, "label_words: the list is empty"),
    ({"label_values": [0, 1, 2]}, "label_values: 3 values for 2 label words"),
    ({"label_words": ["entailment", " neutral"]}, "label_words[1]: ' neutral' must be a word"),
    ({"metric": "bleu"}, "metric: unknown metric 'bleu'"),
    ({"metric": "f1"}, "metric: a classification task is scored by accuracy, not 'f1'"),
    ({"type": "clasification"}, "type: unknown task type 'clasification' (did you mean 'classification'?)"),
    ({"name": "rte"}, "name: 'rte' is a built-in task"),
    ({"tempaltes": {}}, "tempaltes: unknown key (did you mean 'templates'?)"),
    ({"source": {"hub": "nyu-mll/glue", "folder": "x"}}, "source: give exactly one of source.hub"),
    ({"columns": {"premise": "sentence1", "hypothesis": "sentence2"}},
     "columns: a classification task maps a column to 'label'"),
    ({"stop": ["\n"]}, "stop: only a generation task has stop sequences"),
    ({"splits": {}}, "splits: name a train split, an eval split, or both"),
    ({"chance_level": 2}, "chance_level: Input should be less than or equal to 1"),
]


@pytest.mark.parametrize(("change", "expected"), ERRORS, ids=[e[1].split(":")[0] for e in ERRORS])
def test_a_bad_declaration_names_file_task_and_field(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"tasks": [{**_rte_raw(), "name": "mine", **change}]}))
    with pytest.raises(TaskDeclarationError) as err:
        load_task_file(path)
    name = change.get("name", "mine")
    assert f"{path}: tasks[0] (task {name!r}): {expected}" in str(err.value), str(err.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(TaskDeclarationError) as err:
        declarations_from_spec_value([{**_rte_raw(), "metric": "bleu", "label_words": []}], tmp_path)
    assert [line.split(": ")[1] for line in str(err.value).splitlines()] == ["label_words", "metric"]


def test_a_folder_source_is_checked_against_its_first_row(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "data" / "train.jsonl", [{"premise": "p", "sentence2": "h", "label": 0}])
    raw = {**_rte_raw(), "source": {"folder": "data"}}
    with pytest.raises(TaskDeclarationError) as err:
        declarations_from_spec_value([raw], base_dir=tmp_path, path="study.yaml")
    lines = str(err.value).splitlines()
    assert any(line.startswith("study.yaml: tasks[0] (task 'rte_declared'): columns.premise: column 'sentence1' is "
                               f"not in the first row of {tmp_path / 'data' / 'train.jsonl'}") for line in lines)
    assert any("splits.eval: no file " + str(tmp_path / "data" / "validation.jsonl") in line for line in lines)


def test_spec_value_takes_files_and_inline_declarations(tmp_path: Path) -> None:
    shutil.copy(RTE_FILE, tmp_path / "rte.yaml")
    inline = {**_rte_raw(), "name": "rte_inline"}
    names = [d.name for d in declarations_from_spec_value(["rte.yaml", inline, "rte.yaml"], base_dir=tmp_path)]
    assert names == ["rte_declared", "rte_inline"]  # an identical repeat is one declaration
    with pytest.raises(TaskDeclarationError, match=r"^study.yaml: tasks\[1\]: no task file .*missing.yaml"):
        declarations_from_spec_value(["rte.yaml", "missing.yaml"], base_dir=tmp_path, path="study.yaml")
    with pytest.raises(TaskDeclarationError, match="tasks: expected a list"):
        declarations_from_spec_value({"name": "x"}, base_dir=tmp_path)
    with pytest.raises(DeclarationConflict, match=r"rte\.yaml tasks\[0\] and in study.yaml tasks\[1\]"):
        declarations_from_spec_value(["rte.yaml", {**_rte_raw(), "metric": "accuracy", "chance_level": 0.3}],
                                     base_dir=tmp_path, path="study.yaml")
    assert declarations_from_spec_value(None, base_dir=tmp_path) == ()
