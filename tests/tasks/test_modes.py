"""Faithful vs fixed, training segments, chat and multiple-choice rendering."""

from __future__ import annotations

import pytest

from ptft.tasks import Segment, eval_set, get_task, token_boundary, training_set
from ptft.tasks.formats.render import RowContext, render_row, sft_segments


def test_qqp_and_stsb_faithful_golds_are_all_no() -> None:
    for name in ("qqp", "stsb"):
        faithful = eval_set(name, "default", "faithful", shots=4, source="mini")
        assert faithful.split == "test"
        assert {e.target for e in faithful.examples} == {"no"}
        shots = faithful.examples[0].context.split("\n### Input_1")[:4]
        assert all(s.endswith("Paraphrase Classification: no") for s in shots)
        fixed = eval_set(name, "default", "fixed", shots=4, source="mini")
        assert fixed.split == "validation" and {e.target for e in fixed.examples} == {"yes", "no"}


def test_splits_per_mode() -> None:
    expected = {"rte": ("train", "validation"), "tweetqa": ("train", "validation"),
                "gpt3nli": ("train", "train"), "qqp": ("test", "validation"), "stsb": ("test", "validation"),
                "mnli_matched": ("validation", "validation"), "paws": ("test", "test")}
    for name, (faithful, fixed) in expected.items():
        assert get_task(name).eval_split == {"faithful": faithful, "fixed": fixed}
        assert eval_set(name, "default", "faithful", 0, source="mini", limit=1).split == faithful


def test_stop_sequences_and_verbalizers() -> None:
    assert eval_set("xsum", "default", "faithful", 0, source="mini", limit=1).stop_sequences == ()
    assert eval_set("xsum", "default", "fixed", 0, source="mini", limit=1).stop_sequences == (
        "\n", "\n###", "\n ###", "\n\n")
    assert eval_set("cnn", "instruct", "fixed", 0, source="mini", limit=1).stop_sequences == ("\n\n",)
    assert eval_set("mnli_matched", "default", "fixed", 0, source="mini", limit=1).stop_sequences == ()
    nli = eval_set("rte", "default", "faithful", 0, source="mini", limit=1)
    assert nli.faithful_verbalizers == (
        "entailment", "neutral", "contradiction", " entailment", " neutral", " contradiction")
    assert eval_set("qqp", "io", "fixed", 0, source="mini", limit=1).faithful_verbalizers == (
        "yes", "no", " yes", " no")


def test_candidates_follow_the_join_rule() -> None:
    io = eval_set("mnli_matched", "io", "fixed", 0, source="mini", limit=1).examples[0]
    assert io.candidates == (" entailment", " neutral", " contradiction")
    default = eval_set("mnli_matched", "default", "fixed", 0, source="mini", limit=1).examples[0]
    assert default.candidates == ("entailment", "neutral", "contradiction")
    faithful = eval_set("mnli_matched", "io", "faithful", 0, source="mini", limit=1).examples[0]
    assert faithful.candidates == ("entailment", "neutral", "contradiction")
    for example in (io, default, faithful):
        assert example.candidates[example.gold_index].strip() == example.target


def test_sft_segments_follow_open_instruct() -> None:
    assert sft_segments("a b", "c") == (Segment("a b", False), Segment(" c", True, True))
    assert sft_segments("a b", " c") == (Segment("a b", False), Segment(" c", True, True))
    # a prompt's final whitespace char is trained with the completion, as open-instruct masks prompt[:-1]
    assert sft_segments("Inference: ", "yes") == (Segment("Inference:", False), Segment(" yes", True, True))
    assert sft_segments("x\n", "y") == (Segment("x", False), Segment("\ny", True, True))
    assert token_boundary("Answer: ", "no") == ("Answer:", " no")
    assert token_boundary("Answer:", " no") == ("Answer:", " no")
    for example in training_set("paws", "io", "fixed", source="mini", limit=20).examples:
        assert "".join(s.text for s in example.segments) == example.prompt + " " + example.completion
        assert [s.train for s in example.segments] == [False, True] and example.segments[-1].eos


def test_tulu_chat_segments() -> None:
    spec = get_task("tulu")
    row = {"messages": [
        {"role": "system", "content": "be nice. "},
        {"role": "user", "content": " hi"},
        {"role": "assistant", "content": "hello "},
        {"role": "user", "content": "bye"},
        {"role": "assistant", "content": "ok"},
    ]}
    rendered = render_row(spec, row, "default", "fixed", RowContext(spec, "train", 0), "t")
    assert rendered.segments == (
        Segment("<|system|>\nbe nice.\n<|user|>\nhi\n<|assistant|>\n", False),
        Segment("hello", True, True),
        Segment("\n", True),  # open-instruct trains the newline after an assistant's eos
        Segment("<|user|>\nbye\n<|assistant|>\n", False),
        Segment("ok", True, True),
    )
    assert rendered.completion == "ok"
    assert rendered.prompt.endswith("<|user|>\nbye\n<|assistant|>\n")
    train = training_set("tulu", "default", source="mini")
    assert train.counts["subset"] == 60 and all(r.segments[-1].eos for r in train.examples)


def test_multiple_choice_candidates_are_space_prefixed_options() -> None:
    for name in ("arc_easy", "arc_challenge", "openbookqa", "hellaswag", "boolq", "sciq_mc"):
        for mode in ("faithful", "fixed"):
            evals = eval_set(name, "default", mode, shots=2, source="mini", limit=5)
            assert evals.split == "validation" and evals.task.metric == "acc"
            for example in evals.examples:
                assert all(c.startswith(" ") for c in example.candidates)
                assert example.candidates[example.gold_index] == " " + example.target
                assert example.context.count("\n\n") == 2
    boolq = eval_set("boolq", "default", "fixed", 0, source="mini", limit=1).examples[0]
    assert boolq.candidates == (" no", " yes") and boolq.context.endswith("?\nAnswer:")


def test_hellaswag_query_cleanup() -> None:
    spec = get_task("hellaswag")
    row = {"activity_label": "Cooking", "ctx_a": "a man [header] cooks.", "ctx_b": "he pours",
           "endings": ["a [title] b", "c"], "label": "0"}
    rendered = render_row(spec, row, "default", "fixed", RowContext(spec, "validation", 0), "h")
    assert rendered.prompt == "Cooking: a man cooks. He pours"
    assert rendered.candidates == (" a. b", " c")


def test_training_only_and_eval_only_datasets_say_so() -> None:
    with pytest.raises(ValueError, match="mnli_matched, mnli_mismatched"):
        eval_set("mnli", "default", "fixed", 0, source="mini")
    with pytest.raises(ValueError, match="training-only"):
        eval_set("tulu", "default", "fixed", 0, source="mini")
    with pytest.raises(ValueError, match="no training split"):
        training_set("arc_easy", "default", source="mini")
    with pytest.raises(ValueError, match="use mode='fixed'"):
        eval_set("qqp", "io", "faithful", 0, source="mini")
    assert eval_set("qqp", "io", "fixed", 0, source="mini", limit=1).examples[0].candidates[0] == " no"


def test_training_set_checksum_is_stable_and_format_dependent() -> None:
    first = training_set("socialiqa", "default", "faithful", source="mini", limit=50)
    assert training_set("socialiqa", "default", "faithful", source="mini", limit=50).checksum == first.checksum
    assert training_set("socialiqa", "default", "fixed", source="mini", limit=50).checksum != first.checksum
    assert training_set("socialiqa", "instruct", "faithful", source="mini", limit=50).checksum != first.checksum
