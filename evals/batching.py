"""Batching helpers shared by the log-likelihood and generation engines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    Similar lengths waste little padding; longest first makes an out-of-memory batch fail at once
    rather than after an hour.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int, device: Any):
    """Left-padded `input_ids`, `attention_mask` and `position_ids` (real tokens at positions 0..len-1)."""
    import torch

    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
    # Padding positions get 0: they are masked out, and a real token's position must not count them.
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar (a no-op object when disabled)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


def truncate_left(ids: list[int], budget: int) -> tuple[list[int], int]:
    """Keep the last `budget` tokens (at least one); how many were dropped."""
    budget = max(1, budget)
    if len(ids) <= budget:
        return ids, 0
    return ids[-budget:], len(ids) - budget
