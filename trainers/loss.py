"""Causal-LM cross-entropy on the completion tokens only (labels -100 elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from trainers.collate import Batch, collate
from trainers.examples import IGNORE_INDEX, TokenizedExample


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-position loss [B, T-1] in fp32: position i predicts labels[i + 1]; 0 where the label is ignored."""
    batch, length, vocab = logits.shape
    losses = F.cross_entropy(logits[:, :-1].reshape(-1, vocab).float(), labels[:, 1:].reshape(-1),
                             ignore_index=IGNORE_INDEX, reduction="none")  # flat rows: the fast layout
    return losses.view(batch, length - 1)


def loss_sum_and_count(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed target-token loss and the number of target tokens of one batch.

    No 2D attention mask is passed on purpose: the restarting `position_ids` are what keep examples apart
    (see `trainers.collate`), and `use_cache=False` keeps transformers on its training mask path.
    """
    logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
    losses = token_losses(logits, batch.labels)
    return losses.sum(), (batch.labels[:, 1:] != IGNORE_INDEX).sum()


def held_out_rows_loss(model: Any, rows: Sequence[list[TokenizedExample]], pad_id: int,
                       batch_size: int) -> float | None:
    """Token-mean loss over held-out rows (each a list of examples, packed or one), sharded over ranks
    (collective; None with no rows).

    Every rank runs the same number of forward passes (ZeRO-3 gathers parameters collectively): a rank
    out of rows repeats one with every label ignored.
    """
    import math

    import torch.distributed as dist

    if not rows:
        return None
    rank = dist.get_rank() if dist.is_initialized() else 0
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    mine = list(rows[rank::world_size])
    n_batches = math.ceil(math.ceil(len(rows) / world_size) / batch_size)
    first = rows[0][0]
    mine += [[TokenizedExample("", first.input_ids, (IGNORE_INDEX,) * len(first))]] * (n_batches * batch_size - len(mine))
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=model.device)
    with torch.no_grad():
        for b in range(n_batches):
            batch = collate(mine[b * batch_size:(b + 1) * batch_size], pad_id).to(model.device)
            loss_sum, count = loss_sum_and_count(model, batch)
            total += torch.stack([loss_sum.double(), count.double()])
    model.train()
    if dist.is_initialized():
        dist.all_reduce(total)
    return (total[0] / total[1]).item()
