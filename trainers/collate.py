"""Rows, batches and the seeded sampler.

A *row* is one sequence of the batch: one example, or (with packing) several examples laid end to end.
Every row restarts `position_ids` at 0 for each example it holds and the model is called with no 2D
attention mask: transformers then reads the restarts as sequence boundaries and builds a block-diagonal
causal mask (sdpa/eager), or varlen boundaries (flash-attention), so no attention crosses examples. The
first token of every packed example gets label -100, so no loss crosses examples either. Right padding is
a segment of its own at the end of a row: causal attention means no real token ever sees it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch

from trainers.examples import IGNORE_INDEX, TokenizedExample


def plan_rows(lengths: Sequence[int], max_length: int, packing: bool, seed: int) -> list[list[int]]:
    """Group example indices into rows: one per row, or packed first-fit (in a seeded order) up to max_length."""
    if not packing:
        return [[i] for i in range(len(lengths))]
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)  # so rows mix examples instead of following the file order
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(max_length - lengths[i])
    return rows


@dataclass
class Batch:
    """Model inputs for one micro-batch plus the bookkeeping throughput and MFU need."""

    input_ids: torch.Tensor  # [B, T]
    labels: torch.Tensor  # [B, T], IGNORE_INDEX where no loss
    position_ids: torch.Tensor  # [B, T], restarting at 0 for every example
    example_lengths: list[int]  # real length of every example in the batch (attention cost is per example)

    @property
    def padded_tokens(self) -> int:
        return self.input_ids.numel()

    @property
    def real_tokens(self) -> int:
        return sum(self.example_lengths)

    @property
    def target_tokens(self) -> int:
        """Tokens that carry loss (read on the host before the batch moves to the device)."""
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.input_ids.to(device), self.labels.to(device), self.position_ids.to(device),
                     self.example_lengths)


def collate(rows: Sequence[Sequence[TokenizedExample]], pad_id: int, pad_to_multiple_of: int = 1) -> Batch:
    """Lay out rows of examples as one right-padded batch (see the module docstring for why it cannot leak)."""
    width = max(sum(len(e) for e in row) for row in rows)
    width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    lengths: list[int] = []
    for r, row in enumerate(rows):
        start = 0
        for example in row:
            end = start + len(example)
            input_ids[r, start:end] = torch.tensor(example.input_ids)
            labels[r, start:end] = torch.tensor(example.labels)
            labels[r, start] = IGNORE_INDEX  # would be "predicted" by the previous example's last token
            position_ids[r, start:end] = torch.arange(len(example))
            lengths.append(len(example))
            start = end
        position_ids[r, start:] = torch.arange(width - start)  # padding: its own segment
    return Batch(input_ids, labels, position_ids, lengths)


@dataclass(frozen=True)
class EpochSampler:
    """Seeded, resumable order of micro-batches over rows, split across data-parallel ranks.

    Micro-batch `g` (counted from the start of training across epochs) is a pure function of
    (seed, g, rank), so resuming needs only the count of micro-batches already consumed.
    Each epoch every rank sees `len(rows) // world_size` rows (the remainder is left out so all ranks
    step together); the last micro-batch of an epoch may be smaller than `batch_size`.
    """

    num_rows: int
    batch_size: int
    world_size: int = 1
    rank: int = 0
    seed: int = 42

    def __post_init__(self) -> None:
        if self.num_rows < self.world_size:
            raise ValueError(f"{self.num_rows} training rows cannot feed {self.world_size} ranks")

    @property
    def rows_per_rank(self) -> int:
        return self.num_rows // self.world_size

    @property
    def micro_batches_per_epoch(self) -> int:
        return -(-self.rows_per_rank // self.batch_size)

    def position(self, micro_index: int) -> tuple[int, int]:
        """(epoch, micro-batch within the epoch) of global micro-batch `micro_index`."""
        return divmod(micro_index, self.micro_batches_per_epoch)

    def micro_batch(self, micro_index: int) -> list[int]:
        """Row indices of global micro-batch `micro_index` on this rank."""
        epoch, pos = self.position(micro_index)
        mine = _epoch_order(self.num_rows, self.seed, epoch)[self.rank::self.world_size][: self.rows_per_rank]
        return list(mine[pos * self.batch_size:(pos + 1) * self.batch_size])


@lru_cache(maxsize=4)
def _epoch_order(num_rows: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(num_rows))
    random.Random(f"{seed}/{epoch}").shuffle(order)
    return tuple(order)
