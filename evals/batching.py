"""Batching helpers shared by the log-likelihood and generation engines."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

_Engine = TypeVar("_Engine", bound=Callable[..., list])


def once_per_distinct_request(engine: _Engine) -> _Engine:
    """Run `engine(lm, requests, ...)` on each distinct request once and give every copy its answer.

    Few-shot sets drawn from small pools repeat whole prompts; requests are frozen dataclasses, so
    equal requests hash alike.
    """

    @functools.wraps(engine)
    def run(lm, requests, *args, **kwargs):
        first: dict = {}
        copies = [first.setdefault(request, len(first)) for request in requests]
        if len(first) == len(copies):
            return engine(lm, requests, *args, **kwargs)
        answers = engine(lm, list(first), *args, **kwargs)
        return [answers[i] for i in copies]

    return run  # type: ignore[return-value]


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    Similar lengths waste little padding; longest first makes an out-of-memory batch fail at once
    rather than after an hour.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def right_pad(sequences: Sequence[Sequence[int]], pad_id: int, device: Any):
    """Right-padded `input_ids` and each row's length.

    With every pad after every real token, causal attention alone keeps pads out of the real tokens'
    view: a forward needs no attention mask and can take the fast unmasked causal kernels.
    """
    import torch

    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
    lengths = torch.tensor([len(seq) for seq in sequences], dtype=torch.long)
    return ids.to(device), lengths.to(device)


def prefill(lm, contexts: Sequence[Sequence[int]], cache=None):
    """One unmasked causal forward over right-padded contexts (each at least one token long).

    Returns the logits after each context's last token `[B, vocab]`, the filled KV cache (when `cache`
    is given, else None) and the context lengths. Pad positions do enter the cache: whoever reads it
    later masks the columns at or after each row's length.
    """
    import torch

    ids, lengths = right_pad(contexts, lm.pad_id, lm.device)
    positions = torch.arange(ids.shape[1], device=lm.device).expand_as(ids)
    out = lm.model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=cache is not None,
                   logits_to_keep=(lengths - 1)[:, None])  # one logits row per context: its last token
    return out.logits[:, 0, :], out.past_key_values if cache is not None else None, lengths


def attention_mask(lm, mask):
    """A boolean 4-d mask (True = may attend) as the model's attention implementation wants it:
    eager attention adds a float mask; SDPA takes the booleans."""
    import torch

    if getattr(lm.model.config, "_attn_implementation", "sdpa") == "eager":
        return torch.zeros(mask.shape, dtype=lm.dtype, device=mask.device).masked_fill(
            ~mask, torch.finfo(lm.dtype).min)
    return mask


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
