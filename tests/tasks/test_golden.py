"""Golden renders: every (dataset, format, mode) pinned byte for byte, plus the study's own strings."""

from __future__ import annotations

import pytest

from ptft.tasks import eval_set, get_task, template_version
from ptft.tasks.formats import templates
from ptft.tasks.formats.render import RowContext, render_row
from tests.tasks.golden import key_name, keys, load_goldens, snapshot

GOLDENS = load_goldens()


def test_goldens_cover_every_supported_key() -> None:
    assert sorted(GOLDENS) == sorted(key_name(*k) for k in keys())


@pytest.mark.parametrize("key", keys(), ids=lambda k: key_name(*k))
def test_render_matches_golden(key: tuple[str, str, str]) -> None:
    assert snapshot(*key) == GOLDENS[key_name(*key)], (
        "render changed: if intended, run `python -m tests.tasks.update_goldens`"
    )


@pytest.mark.parametrize("mode", ["faithful", "fixed"])
def test_one_space_in_a_template_breaks_the_golden(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    key = ("mnli_matched", "default", mode)
    before = template_version(*key)
    pattern = templates.TEMPLATES["nli"][mode]["default"]
    monkeypatch.setitem(templates.TEMPLATES["nli"][mode], "default", pattern + " ")  # one trailing space
    assert snapshot(*key)["eval"] != GOLDENS[key_name(*key)]["eval"]
    assert template_version(*key) != before


def test_checksum_changes_when_a_render_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    before = eval_set("paws", "instruct", "fixed", shots=0, source="mini", limit=5).checksum
    assert eval_set("paws", "instruct", "fixed", shots=0, source="mini", limit=5).checksum == before
    pattern = templates.TEMPLATES["paraphrase"]["fixed"]["instruct"]
    monkeypatch.setitem(templates.TEMPLATES["paraphrase"]["fixed"], "instruct", pattern.replace("?: ", "? "))
    assert eval_set("paws", "instruct", "fixed", shots=0, source="mini", limit=5).checksum != before


def _render(task: str, row: dict, fmt: str, mode: str = "faithful") -> str:
    spec = get_task(task)
    return render_row(spec, row, fmt, mode, RowContext(spec, "x", 0), "id").prompt


# Strings written out from open_instruct/format_generalization.py, independent of templates.py.
STUDY_STRINGS = [
    ("socialiqa", "default", {"context": "C", "answerA": "a", "answerB": "b", "answerC": "c", "question": "q"},
     "### Input: C\n ### Answer: Answer A: a Answer B: bAnswer C: c\n ### Question: "),
    ("socialiqa", "instruct", {"context": "C", "answerA": "a", "answerB": "b", "answerC": "c", "question": "q"},
     "Given the context: C And the answer: Answer A: a Answer B: bAnswer C: cGenerate a suitable question: "),
    ("socialiqa", "io", {"context": "C", "answerA": "a", "answerB": "b", "answerC": "c", "question": "q"}, "Cabc"),
    ("sciq", "default", {"support": "S", "correct_answer": "a", "distractor1": "b", "distractor2": "c",
                         "distractor3": "d", "question": "q"},
     "### Input: S\n ### Answer: Answer A: a Answer B: b Answer C: cAnswer D: d\n ### Question: "),
    ("sciq", "instruct", {"support": "S", "correct_answer": "a", "distractor1": "b", "distractor2": "c",
                          "distractor3": "d", "question": "q"},
     "Given the context: S And the answer: Answer A: a Answer B: bAnswer C: cAnswer D: dGenerate a suitable question: "),
    ("tweetqa", "default", {"Tweet": "T", "Answer": ["a", "z"], "Question": "q"},
     "### Input: T\n ### Answer: a\n ### Question: "),
    ("tweetqa", "instruct", {"Tweet": "T", "Answer": ["a"], "Question": "q"},
     "Given the context: T And the answer: aGenerate a suitable question: "),
    ("xsum", "default", {"document": "D", "summary": "s"}, "### Input: D\n ### Summary: "),
    ("xlsum", "instruct", {"text": "D", "summary": "s"}, "Please read the following text: D Provide a summary: "),
    ("xsum", "io", {"document": "D", "summary": "s"}, "D"),
    ("mnli_matched", "default", {"premise": "P", "hypothesis": "H", "label": 0},
     "### Input_1: P\n ### Input_2: H\n ### Inference: "),
    ("rte", "instruct", {"sentence1": "P", "sentence2": "H", "label": 0},
     "Consider the following texts: Text 1: P Text 2: H The relation is "),
    ("mnli_mismatched", "io", {"premise": "P", "hypothesis": "H", "label": 0}, "P H"),
    ("qqp", "default", {"text1": "A", "text2": "B", "label": 1},
     "### Input_1: A\n ### Input_2: B\n ### Paraphrase Classification: "),
    ("paws", "instruct", {"sentence1": "A", "sentence2": "B", "label": 1},
     "Let\u2019s compare the two sentences: Sentence_1: A Sentence_2: B Are they paraphrasing?: "),
    ("paws", "io", {"sentence1": "A", "sentence2": "B", "label": 1}, "A B"),
    ("llmbar_natural", "default", {"input": "I", "output_1": "x", "output_2": "y", "label": 2},
     "### Instruction: I### Output_1: x\n ### Output_2: y\n ### Instruction Following: "),
]


@pytest.mark.parametrize(("task", "fmt", "row", "expected"), STUDY_STRINGS, ids=lambda v: str(v)[:20])
def test_faithful_prompt_is_the_study_string(task: str, fmt: str, row: dict, expected: str) -> None:
    assert _render(task, row, fmt) == expected


def test_fixed_mode_repairs_only_the_missing_separators() -> None:
    row = {"context": "C", "answerA": "a", "answerB": "b", "answerC": "c", "question": "q"}
    assert _render("socialiqa", row, "default", "fixed") == (
        "### Input: C\n ### Answer: Answer A: a Answer B: b Answer C: c\n ### Question: ")
    assert _render("socialiqa", row, "io", "fixed") == "C a b c"
    llmbar = {"input": "I", "output_1": "x", "output_2": "y", "label": 2}
    assert _render("llmbar_natural", llmbar, "default", "fixed").startswith("### Instruction: I\n ### Output_1:")
