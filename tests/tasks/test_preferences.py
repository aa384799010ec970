"""Preference sets (ptft/tasks/preferences.py, docs/dpo.md §1): the minis keep the real schemas, chat pairs
render through Tulu's template, the demo set follows the mini rules, and bad rows are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptft.tasks import DataError, UnknownTaskError, get_preference_set, list_preference_sets, preference_set
from ptft.tasks.formats.render import RowContext, render_row
from ptft.tasks.loading import read_jsonl
from ptft.tasks.mini.generate_preferences import PLAN, generate
from ptft.tasks.preferences import PREFERENCE_DIR, split_path
from ptft.tasks.registry import get_task

# The hub datasets' columns (HuggingFaceH4/ultrafeedback_binarized, Anthropic/hh-rlhf).
REAL_COLUMNS = {
    "ultrafeedback": {"prompt", "prompt_id", "chosen", "rejected", "messages", "score_chosen", "score_rejected"},
    "hh_rlhf": {"chosen", "rejected"},
    "preference_pairs": {"prompt", "chosen", "rejected"},
}


def test_shipped_minis_equal_the_generator_output(tmp_path: Path) -> None:
    written = generate(tmp_path)
    shipped = sorted(p.relative_to(PREFERENCE_DIR) for p in PREFERENCE_DIR.rglob("*.jsonl"))
    assert shipped == sorted(p.relative_to(tmp_path) for p in written)
    for rel in shipped:
        assert (tmp_path / rel).read_bytes() == (PREFERENCE_DIR / rel).read_bytes(), rel


def test_every_set_has_a_mini_with_its_splits() -> None:
    assert set(PLAN) == set(list_preference_sets())
    for name in list_preference_sets():
        spec = get_preference_set(name)
        for split in (spec.train_split, spec.test_split):
            pairs = preference_set(name, split, source="mini")
            assert pairs.counts["pairs"] == pairs.counts["rows"] > 0
            if name in REAL_COLUMNS:
                for row in read_jsonl(split_path(spec, split, "mini")).rows:
                    assert set(row) == REAL_COLUMNS[name]


def test_ultrafeedback_renders_the_prompt_with_tulus_template() -> None:
    pair = preference_set("ultrafeedback", source="mini").pairs[0]
    row = read_jsonl(split_path(get_preference_set("ultrafeedback"), "train_prefs", "mini")).rows[0]
    tulu = get_task("tulu")
    sft = render_row(tulu, {"messages": row["chosen"]}, "default", "fixed", RowContext(tulu, "train", 0), "x")
    assert "".join(s.text for s in pair.prompt) == sft.prompt == f"<|user|>\n{row['prompt']}\n<|assistant|>\n"
    assert pair.chosen == row["chosen"][-1]["content"] and pair.rejected == row["rejected"][-1]["content"]
    assert not any(s.train for s in pair.prompt)


def test_hh_rlhf_prompt_is_the_shared_turns() -> None:
    rows = read_jsonl(split_path(get_preference_set("hh_rlhf"), "train", "mini")).rows
    pairs = preference_set("hh_rlhf", source="mini").pairs
    multi = next(i for i, r in enumerate(rows) if r["chosen"].count("\n\nHuman:") == 2)
    pair, row = pairs[multi], rows[multi]
    text = "".join(s.text for s in pair.prompt)
    assert text.startswith("<|user|>\n") and text.endswith("<|assistant|>\n") and text.count("<|user|>") == 2
    assert [s.eos for s in pair.prompt].count(True) == 1  # the earlier assistant turn ends with eos, as in Tulu
    assert row["chosen"].endswith(" " + pair.chosen) and row["rejected"].endswith(" " + pair.rejected)


def test_text_pairs_are_prompt_plus_response_as_written() -> None:
    rows = read_jsonl(split_path(get_preference_set("demo_prefs"), "train", "mini")).rows
    for pair, row in zip(preference_set("demo_prefs", source="mini").pairs, rows, strict=True):
        prompt = "".join(s.text for s in pair.prompt)
        assert prompt + pair.chosen == row["prompt"] + row["chosen"]
        assert prompt + pair.rejected == row["prompt"] + row["rejected"]


def _nli_rule(hypothesis: str) -> str:
    words = hypothesis.split()
    return "contradiction" if "not" in words else "neutral" if "maybe" in words else "entailment"


def test_demo_preferences_follow_the_mini_rules_and_hold_out_their_prompts() -> None:
    train = read_jsonl(split_path(get_preference_set("demo_prefs"), "train", "mini")).rows
    test = read_jsonl(split_path(get_preference_set("demo_prefs"), "test", "mini")).rows
    for row in train + test:
        if row["kind"] == "nli":
            hypothesis = row["prompt"].split("Input 2: ")[1].split("\n")[0]
            assert row["chosen"].strip() == _nli_rule(hypothesis) != row["rejected"].strip()
        else:
            document = row["prompt"].removeprefix("Input: ").split("\n")[0]
            assert row["chosen"].split()[1] in document.split(".")[0].split()  # the lead's subject
            assert row["chosen"] != row["rejected"]
    kinds = [r["kind"] for r in train]
    assert kinds.count("nli") == kinds.count("summary")
    assert {r["chosen"] for r in train if r["kind"] == "nli"} == {" entailment", " neutral", " contradiction"}
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}


# --------------------------------------------------------------------------------------- bad rows
def _folder(tmp_path: Path, name: str, rows: list[dict]) -> str:
    (tmp_path / name).mkdir(parents=True, exist_ok=True)
    (tmp_path / name / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(tmp_path)


GOOD = {"prompt": "Q: what color is snow?\nA:", "chosen": " white.", "rejected": " green."}


@pytest.mark.parametrize("bad, field, problem", [
    ({**GOOD, "rejected": " white."}, "rejected", "identical to chosen"),
    ({**GOOD, "chosen": "  "}, "chosen", "empty response"),
    ({"prompt": GOOD["prompt"], "chosen": " white."}, "rejected", "missing column"),
    ({**GOOD, "chosen": 3}, "chosen", "expected text"),
])
def test_bad_text_rows_name_file_line_and_field(tmp_path, bad, field, problem):
    source = _folder(tmp_path, "preference_pairs", [GOOD, bad])
    with pytest.raises(DataError, match=problem) as info:
        preference_set("preference_pairs", source=source)
    err = info.value
    assert (err.path, err.line, err.field) == (str(tmp_path / "preference_pairs" / "train.jsonl"), 2, field)
    assert str(err).startswith(f"{err.path}:2: dataset 'preference_pairs', split 'train', line 2")
    skipped = preference_set("preference_pairs", source=source, on_error="skip")
    assert skipped.counts == {"rows": 2, "skipped_bad_rows": 1, "pairs": 1}


def _messages(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


@pytest.mark.parametrize("chosen, rejected, field, problem", [
    (_messages("q?", "yes."), _messages("q?", " yes. "), "rejected", "identical to chosen"),
    (_messages("q?", "yes."), _messages("q?", ""), "rejected[1].content", "empty response"),
    (_messages("q?", "yes."), _messages("other?", "no."), "rejected", "differ before their last assistant turn"),
    (_messages("q?", "yes.")[:1], _messages("q?", "no."), "chosen[0]", "must be the assistant's response"),
])
def test_bad_chat_rows_are_named(tmp_path, chosen, rejected, field, problem):
    source = _folder(tmp_path, "ultrafeedback", [{"prompt": "q?", "chosen": chosen, "rejected": rejected}])
    (tmp_path / "ultrafeedback" / "train.jsonl").rename(tmp_path / "ultrafeedback" / "train_prefs.jsonl")
    with pytest.raises(DataError, match=problem) as info:
        preference_set("ultrafeedback", source=source)
    assert (info.value.line, info.value.field) == (1, field)


def test_bad_dialogue_is_named(tmp_path):
    source = _folder(tmp_path, "hh_rlhf", [{"chosen": "Human: hi\n\nAssistant: yes", "rejected": "\n\nHuman: hi"}])
    with pytest.raises(DataError, match="turns from the start") as info:
        preference_set("hh_rlhf", source=source)
    assert info.value.field == "chosen"


def test_unknown_names_and_sources() -> None:
    with pytest.raises(UnknownTaskError, match="did you mean 'ultrafeedback'"):
        preference_set("ultrafedback")
    with pytest.raises(DataError, match="has no hub copy"):
        preference_set("demo_prefs", source="hub")
    with pytest.raises(DataError, match="no file"):
        preference_set("demo_prefs", "validation", source="mini")
