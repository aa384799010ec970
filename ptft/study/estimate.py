"""Cost estimate of a plan: tokens, FLOPs and GPU-hours, before anything runs.

Training FLOPs ~= 6 * N * tokens (forward + backward); evaluation ~= 2 * N per token processed (prompt
forward passes plus greedy generation with a KV cache). GPU-hours divide by MFU x peak; both are flags.
Token counts come from the registry's typical tokens per example, so this is an estimate, not a bill.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from ptft.study.plan import Plan

# Dense bf16 peaks (FLOP/s) of common training GPUs.
GPU_PEAK_FLOPS = {
    "h100": 989e12,
    "h200": 989e12,
    "a100": 312e12,
    "l40s": 362e12,
    "a10g": 125e12,
}

# Parameter counts of known hub models (non-embedding + embedding).
KNOWN_PARAMS = {
    "allenai/OLMo-1B-hf": 1_176_764_416,
    "allenai/OLMo-1B": 1_176_764_416,
    "allenai/OLMo-7B-hf": 6_888_095_744,
}

GENERATION_TYPES = ("generation",)


@dataclass(frozen=True)
class Estimate:
    num_params: int | None
    train_tokens_per_trial: dict[str, int]  # trial_id -> tokens
    train_tokens: int
    eval_tokens: int
    train_flops: float
    eval_flops: float
    gpu: str
    peak_flops: float
    mfu: float
    gpu_hours: float | None

    def to_json(self) -> dict:
        return asdict(self)


def model_params(model_id: str, declared: int | None, base_dir: str = ".") -> int | None:
    """The declared count, a known hub model's, or one computed from a local config.json."""
    if declared:
        return declared
    if model_id in KNOWN_PARAMS:
        return KNOWN_PARAMS[model_id]
    path = model_id if os.path.isabs(model_id) else os.path.join(base_dir, model_id)
    config_file = os.path.join(path, "config.json")
    if os.path.isfile(config_file):
        with open(config_file, encoding="utf-8") as f:
            cfg = json.load(f)
        d, layers = cfg.get("hidden_size"), cfg.get("num_hidden_layers")
        ff, vocab = cfg.get("intermediate_size"), cfg.get("vocab_size")
        if all(isinstance(x, int) for x in (d, layers, ff, vocab)):
            embeddings = vocab * d * (1 if cfg.get("tie_word_embeddings") else 2)
            return layers * (4 * d * d + 3 * d * ff) + embeddings
    return None


def _split_size(task, split: str | None) -> int | None:
    return (getattr(task, "split_sizes", None) or {}).get(split) if split else None


def _train_rows(task) -> int:
    total = _split_size(task, task.train_split)
    if task.train_subset_fraction and total:
        return int(total * task.train_subset_fraction)
    if task.train_subset_size:
        return min(task.train_subset_size, total) if total else task.train_subset_size
    return total or 0


def _eval_rows(task, mode: str) -> int:
    size = _split_size(task, task.eval_split.get(mode))
    return size if size is not None else (task.eval_size or 0)


def estimate_plan(plan: Plan, gpu: str = "h100", mfu: float = 0.4, peak_flops: float | None = None) -> Estimate:
    """Tokens, FLOPs and GPU-hours for every trial and eval job of `plan`."""
    from ptft import tasks

    spec = plan.spec
    n = model_params(spec.model.id, spec.model.num_params, spec.base_dir)
    peak = peak_flops or GPU_PEAK_FLOPS.get(gpu.lower())
    if peak is None:
        raise ValueError(f"unknown GPU {gpu!r}; known: {sorted(GPU_PEAK_FLOPS)} (or pass a peak in FLOP/s)")

    per_trial: dict[str, int] = {}
    for trial in plan.trials:
        task = tasks.get_task(trial.train_dataset)
        rows = _train_rows(task)
        if spec.train.val_size:
            rows = max(rows - spec.train.val_size, 0)
        tokens = rows * min(task.tokens_per_example, spec.train.max_length) * trial.epochs
        if spec.train.max_steps:  # a step cap bounds the tokens too
            per_step = spec.train.batch_size * spec.train.grad_accum * spec.resources.workers_per_trial
            tokens = min(tokens, spec.train.max_steps * per_step * task.tokens_per_example)
        per_trial[trial.trial_id] = tokens
    train_tokens = sum(per_trial.values())

    eval_tokens = 0
    limit = spec.eval.limit
    for job in (planned.job for planned in plan.eval_jobs):
        task = tasks.get_task(job.dataset)
        examples = min(_eval_rows(task, job.mode or spec.eval.mode), limit) if limit else _eval_rows(task, job.mode or spec.eval.mode)
        context = min(task.tokens_per_example * (job.shots + 1), spec.eval.max_length)
        generated = spec.eval.max_new_tokens if task.task_type in GENERATION_TYPES else 0
        eval_tokens += examples * (context + generated)

    train_flops = 6.0 * n * train_tokens if n else 0.0
    eval_flops = 2.0 * n * eval_tokens if n else 0.0
    hours = (train_flops + eval_flops) / (mfu * peak) / 3600 if n else None
    return Estimate(n, per_trial, train_tokens, eval_tokens, train_flops, eval_flops, gpu, peak, mfu, hours)
