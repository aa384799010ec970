"""`TrainConfig`: the hyperparameters of one fine-tuning trial (everything but the lr and the data).

Defaults are the study's recipe (docs/study.md §4): 3 epochs, micro-batch 1 x grad-accum 8, max length 2048,
AdamW with weight decay 0, linear decay with warmup ratio 0.03, seed 42, ZeRO stage 3, bf16 on GPU.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ptft.core.identity import defines, setting


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = defines(3, ge=1, description="Passes over the training subset.")
    batch_size: int = defines(1, ge=1, description="Micro-batch per worker.")
    grad_accum: int = defines(8, ge=1, description="Micro-batches per optimizer step.")
    max_length: int = defines(2048, ge=8, description="Tokens per sequence; longer examples are truncated and counted.")
    seed: int = defines(42, description="Seed for init-free randomness: sampler order, dropout.")
    warmup_ratio: float = defines(0.03, ge=0.0, lt=1.0, description="Linear warmup steps = int(ratio x total).")
    weight_decay: float = defines(0.0, ge=0.0, description="AdamW weight decay.")
    grad_clip: float | None = defines(1.0, gt=0.0, description="Gradient-norm clipping; null disables it.")
    zero_stage: Literal[0, 1, 2, 3] = setting(3, description="DeepSpeed ZeRO stage.")
    precision: Literal["auto", "bf16", "fp32"] = defines("auto", description="auto: bf16 on GPU, fp32 on CPU.")
    packing: bool = defines(False, description="Pack several examples per sequence (no cross-example leakage).")
    pad_to_multiple_of: int = setting(
        1, ge=1, description="Pad each batch's width up to a multiple of this (fewer distinct shapes).")
    checkpoint_every: int | None = setting(None, ge=1, description="Checkpoint every N optimizer steps (and at the end).")
    val_size: int = defines(200, ge=0, description="Held-out training rows for validation loss (lr selection).")
    max_steps: int | None = defines(None, ge=1, description="Stop after N optimizer steps (tests, smoke runs); the lr schedule spans the shortened run.")
    log_every: int = setting(10, ge=1, description="Report metrics every N optimizer steps.")
    val_every: int | None = setting(
        None, ge=1, description="Validation loss every N optimizer steps; null: at every report (log_every).")
    adam_betas: tuple[float, float] = defines((0.9, 0.999), description="AdamW betas (torch defaults).")
    adam_eps: float = defines(1e-8, gt=0.0, description="AdamW epsilon (torch default).")
    gradient_checkpointing: bool = setting(False, description="Recompute activations in backward to save memory.")
    zero3_persistence_threshold: int | None = setting(
        None, ge=0, description="ZeRO-3: parameters with fewer elements stay whole on every rank (DeepSpeed's "
        "stage3_param_persistence_threshold); null: DeepSpeed's default (100000).")
    attn_implementation: Literal["sdpa", "eager", "flex_attention", "flash_attention_2"] | None = setting(
        None, description="Attention kernels (transformers' attn_implementation); null: the model's default (sdpa). "
        "Kernels agree to float tolerance, so this is a setting.")
    peak_flops: float | None = setting(
        None, gt=0.0, description="Per-device peak FLOP/s for MFU; null: look the device up in the table.")
