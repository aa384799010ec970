"""Batching helpers shared by the log-likelihood and generation engines."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TypeVar

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
