"""Causal-LM cross-entropy on the completion tokens only (labels -100 elsewhere)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainers.collate import Batch
from trainers.examples import IGNORE_INDEX


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
