"""Training examples: `tasks` renders -> token ids + labels, loss on the completion only.

A `Rendered` example carries `segments` (text, train, eos). Each segment is tokenized on its own (adjacent
segments with the same flag and no eos between them are joined first, so a join space stays attached to the
word after it), labels are -100 where `train` is False, and the tokenizer's eos is appended where `eos` is
True. Sequences longer than `max_length` keep their head (as open-instruct does) and are counted; examples
with no target token left are dropped and counted. Nothing is silent: `ExampleSet.counts` says what happened.

A tokenizer that adds special tokens in front of a text (Llama-style BOS; OLMo and Pythia add none) gets
them once, at the start of the sequence, with label -100: the model sees what it saw in pre-training and
what the evaluator feeds it (`tokenizer(context)`), and the completion's labels stay on its own tokens
(docs/families.md §3).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedExample:
    """One training sequence: `labels[i]` is the target for position i (the loss shifts by one)."""

    example_id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_targets(self) -> int:
        """Tokens that carry loss; position 0 never does, since nothing predicts it."""
        return sum(1 for label in self.labels[1:] if label != IGNORE_INDEX)


@dataclass(frozen=True)
class ExampleSet:
    """Tokenized examples plus the counts of what tokenization did to them."""

    examples: tuple[TokenizedExample, ...]
    counts: dict[str, int] = field(default_factory=dict)


def _merged_segments(segments: Sequence[Any]) -> list[tuple[str, bool, bool]]:
    """Join runs of segments with the same train flag (and no eos inside the run)."""
    merged: list[tuple[str, bool, bool]] = []
    for seg in segments:
        if merged and merged[-1][1] == seg.train and not merged[-1][2]:
            text, train, _ = merged[-1]
            merged[-1] = (text + seg.text, train, seg.eos)
        else:
            merged.append((seg.text, seg.train, seg.eos))
    return merged


_PROBE = "Answer: yes"


def leading_special_ids(tokenizer: Any) -> tuple[int, ...]:
    """The ids `tokenizer(text)` puts before a text's own tokens (Llama: its BOS; OLMo, Pythia: none).

    Read from the tokenizer's behaviour, not from its class or `bos_token` attribute: OLMo's and
    Pythia's tokenizers name a bos token they never add.
    """
    with_special = list(tokenizer(_PROBE)["input_ids"])
    plain = list(tokenizer(_PROBE, add_special_tokens=False)["input_ids"])
    for start in range(len(with_special) - len(plain) + 1):
        if with_special[start:start + len(plain)] == plain:
            return tuple(with_special[:start])
    raise ValueError(f"the tokenizer's special tokens change the text's own tokens ({with_special} vs {plain}); "
                     "cannot tell where the text starts")


def tokenize_rendered(rendered: Any, tokenizer: Any, max_length: int,
                      prefix: tuple[int, ...] | None = None) -> tuple[TokenizedExample, bool]:
    """Token ids and labels for one `tasks.Rendered`; returns (example, was_truncated).

    `prefix`: the tokenizer's leading special ids (`leading_special_ids`, computed here when None); they
    start the sequence once, untrained. The example may have no target left after truncation; callers
    check `num_targets`.
    """
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise ValueError("the tokenizer has no eos token; SFT sequences end with eos")
    prefix = leading_special_ids(tokenizer) if prefix is None else prefix
    input_ids: list[int] = list(prefix)
    labels: list[int] = [IGNORE_INDEX] * len(prefix)
    for text, train, eos in _merged_segments(rendered.segments):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        if eos:
            ids = [*ids, eos_id]
        input_ids.extend(ids)
        labels.extend(ids if train else [IGNORE_INDEX] * len(ids))
    truncated = len(input_ids) > max_length
    example = TokenizedExample(rendered.example_id, tuple(input_ids[:max_length]), tuple(labels[:max_length]))
    return example, truncated


def build_examples(rendered: Sequence[Any], tokenizer: Any, max_length: int) -> ExampleSet:
    """Tokenize a sequence of `Rendered` examples; truncations and drops are counted, never silent."""
    kept: list[TokenizedExample] = []
    truncated = dropped = 0
    prefix = leading_special_ids(tokenizer)  # once per set, not per example
    for item in rendered:
        example, was_truncated = tokenize_rendered(item, tokenizer, max_length, prefix)
        truncated += was_truncated
        if example.num_targets == 0:
            dropped += 1
            continue
        kept.append(example)
    counts = {
        "rendered": len(rendered),
        "kept": len(kept),
        "truncated": truncated,
        "dropped_no_target": dropped,
        "tokens": sum(len(e) for e in kept),
        "target_tokens": sum(e.num_targets for e in kept),
    }
    return ExampleSet(tuple(kept), counts)


def split_validation(items: Sequence[Any], val_size: int, seed: int) -> tuple[list[Any], list[Any]]:
    """Split `val_size` items off with a seeded shuffle; returns (train, val), each in original order.

    At most a fifth of the data goes to validation, so tiny sets (mini datasets, smoke runs) still train.
    """
    n_val = min(val_size, len(items) // 5)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:n_val])
    train = [x for i, x in enumerate(items) if i not in val_idx]
    val = [x for i, x in enumerate(items) if i in val_idx]
    return train, val
