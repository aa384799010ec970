"""Tokenization and loss masking of `tasks` renders."""

from __future__ import annotations

from ptft.tasks.types import Rendered, Segment
from trainers.examples import IGNORE_INDEX, build_examples, split_validation, tokenize_rendered


def _rendered(example_id: str, *segments: Segment) -> Rendered:
    prompt = "".join(s.text for s in segments if not s.train)
    completion = "".join(s.text for s in segments if s.train)
    return Rendered(example_id, prompt, completion, segments, None, ())


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_prompt_masked_completion_trained_eos_appended(tokenizer):
    r = _rendered("a", Segment("### Input: The cat sat.\n ### Summary:", False),
                  Segment(" A cat sat.", True, eos=True))
    example, truncated = tokenize_rendered(r, tokenizer, max_length=512)
    prompt, completion = _ids(tokenizer, "### Input: The cat sat.\n ### Summary:"), _ids(tokenizer, " A cat sat.")
    assert not truncated
    assert list(example.input_ids) == prompt + completion + [tokenizer.eos_token_id]
    assert list(example.labels) == [IGNORE_INDEX] * len(prompt) + completion + [tokenizer.eos_token_id]
    assert example.num_targets == len(completion) + 1


def test_join_space_segment_stays_with_the_word_after_it(tokenizer):
    split = _rendered("a", Segment("Premise", False), Segment(" ", True), Segment("entailment", True, eos=True))
    joined = _rendered("b", Segment("Premise", False), Segment(" entailment", True, eos=True))
    assert tokenize_rendered(split, tokenizer, 64)[0].input_ids == tokenize_rendered(joined, tokenizer, 64)[0].input_ids


def test_chat_masks_every_non_assistant_turn(tokenizer):
    r = _rendered(
        "chat",
        Segment("<|user|>\nHi\n<|assistant|>\n", False), Segment("Hello.", True, eos=True),
        Segment("\n<|user|>\nBye\n<|assistant|>\n", False), Segment("Goodbye.", True, eos=True),
    )
    example, _ = tokenize_rendered(r, tokenizer, 512)
    eos = tokenizer.eos_token_id
    trained = [t for t, lab in zip(example.input_ids, example.labels, strict=True) if lab != IGNORE_INDEX]
    assert trained == _ids(tokenizer, "Hello.") + [eos] + _ids(tokenizer, "Goodbye.") + [eos]


def test_truncation_and_drops_are_counted(tokenizer):
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 20
    examples = [
        _rendered("fits", Segment("Question:", False), Segment(" yes", True, eos=True)),
        _rendered("cut", Segment("Q:", False), Segment(" " + long_prompt, True, eos=True)),  # keeps targets
        _rendered("gone", Segment(long_prompt, False), Segment(" no", True, eos=True)),  # no target left
    ]
    out = build_examples(examples, tokenizer, max_length=32)
    assert [e.example_id for e in out.examples] == ["fits", "cut"]
    assert out.counts["truncated"] == 2
    assert out.counts["dropped_no_target"] == 1
    assert all(len(e) <= 32 for e in out.examples)


def test_validation_split_is_seeded_and_disjoint():
    items = list(range(100))
    train, val = split_validation(items, val_size=10, seed=42)
    assert len(val) == 10 and sorted(train + val) == items
    assert split_validation(items, 10, 42) == (train, val)
    assert split_validation(items, 10, 7)[1] != val
    assert len(split_validation(list(range(20)), 200, 42)[1]) == 4  # capped at a fifth
