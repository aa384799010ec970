"""The DeepSpeed config, optimizer and lr schedule, all derived from `TrainConfig`.

GPU: bf16, and DeepSpeed builds its fused AdamW from the config. CPU: fp32 and a torch AdamW passed in as
a client optimizer (with `zero_allow_untested_optimizer`), which avoids DeepSpeed's ~48 s JIT build of the
CPU fused Adam. The schedule is a client `LambdaLR` with the exact shape of transformers'
`get_linear_schedule_with_warmup` (DeepSpeed's WarmupDecayLR forces at least 2 warmup steps), and
DeepSpeed steps and checkpoints it with the optimizer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from trainers.config import TrainConfig

# ZeRO-3 settings of the study's `stage3_no_offloading_accelerate.conf` (docs/study.md §4).
_STAGE3 = {
    "overlap_comm": True,
    "contiguous_gradients": True,
    "sub_group_size": 1e9,
    "stage3_max_live_parameters": 1e9,
    "stage3_max_reuse_distance": 1e9,
    "stage3_gather_16bit_weights_on_model_save": True,
}


def resolve_precision(precision: str, on_gpu: bool) -> str:
    """'auto' means bf16 on GPU and fp32 on CPU."""
    if precision == "auto":
        return "bf16" if on_gpu else "fp32"
    return precision


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    return int(cfg.warmup_ratio * total_steps)


def deepspeed_config(cfg: TrainConfig, *, lr: float, world_size: int, on_gpu: bool) -> dict[str, Any]:
    """The DeepSpeed config dict for one trial.

    On GPU the optimizer is declared here (DeepSpeed's fused AdamW); on CPU it is a client optimizer
    (`build_client_optimizer`). The lr schedule is always a client scheduler (`linear_warmup_schedule`).
    """
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.zero_stage == 3:
        zero.update(_STAGE3)
        if cfg.zero3_persistence_threshold is not None:
            zero["stage3_param_persistence_threshold"] = cfg.zero3_persistence_threshold
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "train_batch_size": cfg.batch_size * cfg.grad_accum * world_size,
        "gradient_clipping": cfg.grad_clip or 0.0,
        "bf16": {"enabled": resolve_precision(cfg.precision, on_gpu) == "bf16"},
        "zero_optimization": zero,
        "steps_per_print": 10**9,  # we report ourselves
        "wall_clock_breakdown": False,
    }
    if on_gpu:
        config["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": lr, "betas": list(cfg.adam_betas), "eps": cfg.adam_eps,
                       "weight_decay": cfg.weight_decay},
        }
    else:
        config["zero_allow_untested_optimizer"] = True
    return config


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no decay on biases and norm weights (open-instruct's rule; moot at the default 0)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]  # OLMo's norms have no weights: ZeRO rejects empty groups


def build_client_optimizer(groups: list[dict[str, Any]], cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """torch AdamW for the CPU path (the GPU path lets DeepSpeed build its fused one)."""
    return torch.optim.AdamW(groups, lr=lr, betas=cfg.adam_betas, eps=cfg.adam_eps,
                             weight_decay=cfg.weight_decay)


def linear_warmup_schedule(total_steps: int, warmup: int) -> Callable[[torch.optim.Optimizer], Any]:
    """A factory DeepSpeed calls with its optimizer: linear warmup to the peak lr, then linear decay to 0."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
