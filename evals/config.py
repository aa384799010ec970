"""`EvalConfig`: how a model's eval jobs are scored (the datasets, formats and shots live in the spec)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ptft.core.identity import defines, setting


class EvalConfig(BaseModel):
    """How a model's eval jobs are scored; every field that changes a score is part of the cache key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["faithful", "fixed"] = defines(
        "fixed", description="faithful: the study's scoring and data quirks; fixed: corrected."
    )
    batch_size: int = setting(16, ge=1, description="Requests per forward pass.")
    max_new_tokens: int = defines(60, ge=1, description="Greedy generation length.")
    max_length: int = defines(2048, ge=8, description="Context budget; k-shot prefixes drop shots to fit.")
    limit: int | None = defines(None, ge=1, description="Score only the first N examples of each eval set.")
    bootstrap_resamples: int = defines(3000, ge=10, description="Bootstrap resamples for std and CI.")
    bootstrap_seed: int = defines(1234, description="Seed of the bootstrap (recorded in every result).")
    precision: Literal["auto", "bf16", "fp32"] = defines("auto", description="auto: faithful mode the checkpoint's stored dtype; fixed mode bf16 on GPU, fp32 on CPU.")
    device: str | None = setting(None, description="torch device; None: cuda when available, else cpu.")
    fewshot_seed: int = defines(1234, description="Seed of the fixed-mode few-shot draw (tasks.eval_set).")
