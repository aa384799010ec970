"""Rows, packing, the sampler, and packing's no-leak guarantee."""

from __future__ import annotations

import torch

from trainers.collate import EpochSampler, collate, plan_rows
from trainers.examples import IGNORE_INDEX, TokenizedExample
from trainers.loss import token_losses


def _example(example_id: str, ids: list[int], n_prompt: int) -> TokenizedExample:
    labels = [IGNORE_INDEX] * n_prompt + ids[n_prompt:]
    return TokenizedExample(example_id, tuple(ids), tuple(labels))


def test_plan_rows_packs_within_max_length_and_keeps_every_example():
    lengths = [5, 9, 3, 7, 2, 8, 6]
    rows = plan_rows(lengths, max_length=12, packing=True, seed=0)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 12 for row in rows)
    assert len(rows) < len(lengths)
    assert plan_rows(lengths, 12, packing=False, seed=0) == [[i] for i in range(len(lengths))]


def test_collate_restarts_positions_and_masks_example_starts():
    a, b = _example("a", [10, 11, 12, 13], 2), _example("b", [20, 21, 22], 1)
    batch = collate([[a, b], [b]], pad_id=0)
    assert batch.input_ids.tolist() == [[10, 11, 12, 13, 20, 21, 22], [20, 21, 22, 0, 0, 0, 0]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 0, 1, 2], [0, 1, 2, 0, 1, 2, 3]]
    assert batch.labels.tolist() == [[-100, -100, 12, 13, -100, 21, 22], [-100, 21, 22] + [-100] * 4]
    assert batch.example_lengths == [4, 3, 3] and batch.real_tokens == 10 and batch.padded_tokens == 14


def test_sampler_is_seeded_disjoint_across_ranks_and_wraps_epochs():
    ranks = [EpochSampler(num_rows=10, batch_size=2, world_size=2, rank=r, seed=3) for r in range(2)]
    assert ranks[0].micro_batches_per_epoch == 3  # 5 rows per rank, last micro-batch has 1
    epoch0 = [i for s in ranks for m in range(3) for i in s.micro_batch(m)]
    assert sorted(epoch0) == list(range(10))
    assert [ranks[0].micro_batch(m) for m in range(3, 6)] != [ranks[0].micro_batch(m) for m in range(3)]
    again = EpochSampler(num_rows=10, batch_size=2, world_size=2, rank=0, seed=3)
    assert [again.micro_batch(m) for m in range(6)] == [ranks[0].micro_batch(m) for m in range(6)]
    assert ranks[0].position(4) == (1, 1)


def test_packing_does_not_leak_attention_or_loss(tiny_model_dir, tokenizer):
    """Per-token losses of examples packed in one row equal their losses computed one by one."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    texts = ["### Input: The cat sat on the mat.", "A man is playing a guitar on the street.",
             "entailment neutral contradiction yes no"]
    examples = []
    for i, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        examples.append(_example(str(i), ids, n_prompt=3))

    def per_token(rows):
        batch = collate(rows, tokenizer.pad_token_id)
        with torch.no_grad():
            logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
        return token_losses(logits, batch.labels), batch.labels[:, 1:] != IGNORE_INDEX

    packed, packed_mask = per_token([examples])
    packed_losses = packed[packed_mask]
    alone = torch.cat([per_token([[e]])[0][per_token([[e]])[1]] for e in examples])
    assert packed_losses.shape == alone.shape
    torch.testing.assert_close(packed_losses, alone, rtol=1e-5, atol=1e-5)
    # Padding in a batch of unpacked rows changes nothing either.
    padded, padded_mask = per_token([[examples[0]], [examples[1]]])
    torch.testing.assert_close(padded[padded_mask], alone[: padded_mask.sum()], rtol=1e-5, atol=1e-5)
