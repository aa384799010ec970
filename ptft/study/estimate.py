"""Cost estimate of a plan: tokens, FLOPs, GPU-hours and wall-clock time where it will run, before anything runs.

Training FLOPs ~= 6 * N * tokens (forward + backward); evaluation ~= 2 * N per token processed (prompt
forward passes plus greedy generation with a KV cache). On GPUs, hours divide by MFU x peak (both flags).
A grid on CPUs (`resources.gpus_per_worker: 0`, the demo and the smoke grids) gets a wall-clock estimate
from measured CPU throughput instead: the grid's own finished trials when its storage has some, else
`CPU_THROUGHPUT` (measured on a 2-core machine). Rows come from the registry's split sizes for hub data
and from the files themselves for the shipped minis or a folder. Tokens per example are the registry's
typical counts, so this is an estimate, not a bill.
"""

from __future__ import annotations

import json
import os
import statistics
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
class CpuThroughput:
    """What one CPU worker achieves on the tiny models a CPU grid trains (measured, see below)."""

    train_flops_per_s: float  # 6·N·tokens per second of the trial's own loop
    eval_flops_per_s: float  # 2·N·tokens per second of scoring
    trial_fixed_s: dict[str, float]  # per trial launch: process start, imports, DeepSpeed set-up, export
    eval_model_fixed_s: float  # per evaluated model: load, tokenize, write records


# Measured on a 2-core machine: the demo grid (0.84M parameters; 12 trials, 12 evaluated models) and
# benchmarks/grid_overhead.py (fixed cost per trial by launch).
CPU_THROUGHPUT = CpuThroughput(train_flops_per_s=2.0e10, eval_flops_per_s=2.0e10,
                               trial_fixed_s={"in_process": 2.2, "torch_trainer": 30.6}, eval_model_fixed_s=2.0)


@dataclass(frozen=True)
class WallClock:
    """Where and how long: seconds of work, how many run at once, and the wall time that gives."""

    where: str  # "cpu" | "gpu"
    train_seconds: float  # all trials' own compute plus their fixed costs
    eval_seconds: float
    train_concurrency: int
    eval_concurrency: int
    throughput_source: str  # "measured in this grid's storage" | "CPU_THROUGHPUT (2-core machine)" | "MFU x peak"

    @property
    def train_wall_s(self) -> float:
        return self.train_seconds / self.train_concurrency

    @property
    def eval_wall_s(self) -> float:
        return self.eval_seconds / self.eval_concurrency

    def to_json(self) -> dict:
        return asdict(self) | {"train_wall_s": self.train_wall_s, "eval_wall_s": self.eval_wall_s}


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
    gpu_hours: float | None  # train + eval
    train_gpu_hours: float | None
    eval_gpu_hours: float | None
    wall: WallClock | None  # None when the parameter count is unknown
    data_source: str  # "hub" (registry split sizes) or "local" (rows counted in the files)

    def to_json(self) -> dict:
        out = asdict(self)
        out["wall"] = self.wall.to_json() if self.wall else None
        return out


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


def _split_size(task, split: str | None, source: str = "hub") -> int | None:
    """Rows of a split: the registry's size for hub data, the file's rows for a local source."""
    from ptft.tasks.loading import count_rows

    return count_rows(task, split, source) if split else None


def _train_rows(task, source: str) -> int:
    total = _split_size(task, task.train_split, source)
    if task.train_subset_fraction and total:
        return int(total * task.train_subset_fraction)
    if task.train_subset_size:
        return min(task.train_subset_size, total) if total else task.train_subset_size
    return total or 0


def _eval_rows(task, mode: str, source: str) -> int:
    size = _split_size(task, task.eval_split.get(mode), source)
    if size is None and source != "hub":
        return 0  # a local source without that split: the run will say so; it costs nothing here
    return size if size is not None else (task.eval_size or 0)


def measured_train_flops_per_s(plan: Plan, n: int) -> float | None:
    """Median 6·N·tokens/s of the grid's own finished trials (their manifests), when there are any."""
    from ptft.core import storage
    from ptft.core.layout import GridLayout

    layout = GridLayout(plan.spec.storage_root())
    rates = []
    for trial in plan.trials:
        out = layout.trial(trial.trial_id)
        if storage.exists(out.completed):
            tokens = storage.read_json(out.manifest).get("tokens", {})
            if tokens.get("train_seconds"):
                rates.append(6.0 * n * tokens["real"] / tokens["train_seconds"])
    return statistics.median(rates) if rates else None


def _cpu_slots(per_worker: float) -> int:
    return max(1, int((os.cpu_count() or 1) // per_worker))


def estimate_plan(plan: Plan, gpu: str = "h100", mfu: float = 0.4, peak_flops: float | None = None) -> Estimate:
    """Tokens, FLOPs and GPU-hours for every trial and eval job of `plan`."""
    from ptft import tasks

    spec = plan.spec
    n = model_params(spec.model.id, spec.model.num_params, spec.base_dir)
    peak = peak_flops or GPU_PEAK_FLOPS.get(gpu.lower())
    if peak is None:
        raise ValueError(f"unknown GPU {gpu!r}; known: {sorted(GPU_PEAK_FLOPS)} (or pass a peak in FLOP/s)")

    source = "hub" if spec.data.source == "hub" else spec.data_source()
    per_trial: dict[str, int] = {}
    for trial in plan.trials:
        task = tasks.get_task(trial.train_dataset)
        rows = _train_rows(task, source)
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
        rows = _eval_rows(task, job.mode or spec.eval.mode, source)
        examples = min(rows, limit) if limit else rows
        context = min(task.tokens_per_example * (job.shots + 1), spec.eval.max_length)
        generated = spec.eval.max_new_tokens if task.task_type in GENERATION_TYPES else 0
        eval_tokens += examples * (context + generated)

    train_flops = 6.0 * n * train_tokens if n else 0.0
    eval_flops = 2.0 * n * eval_tokens if n else 0.0
    train_hours = train_flops / (mfu * peak) / 3600 if n else None
    eval_hours = eval_flops / (mfu * peak) / 3600 if n else None
    hours = train_hours + eval_hours if n else None
    wall = _wall_clock(plan, n, train_flops, eval_flops, train_hours, eval_hours) if n else None
    return Estimate(n, per_trial, train_tokens, eval_tokens, train_flops, eval_flops, gpu, peak, mfu, hours,
                    train_hours, eval_hours, wall, "hub" if source == "hub" else "local")


def _wall_clock(plan: Plan, n: int, train_flops: float, eval_flops: float, train_hours: float | None,
                eval_hours: float | None) -> WallClock:
    res = plan.spec.resources
    models = len(plan.eval_models())
    if res.gpus_per_worker or res.eval_gpus_per_worker:
        # A trial holds workers_per_trial GPUs; the hours above are GPU-hours.
        return WallClock("gpu", (train_hours or 0) * 3600 / res.workers_per_trial, (eval_hours or 0) * 3600,
                         res.max_concurrent_trials, res.max_concurrent_evals, "MFU x peak")
    measured = measured_train_flops_per_s(plan, n)
    cpu = CPU_THROUGHPUT
    launch = "in_process" if res.in_process else "torch_trainer"
    train_rate = measured or cpu.train_flops_per_s * res.workers_per_trial
    train_seconds = train_flops / train_rate + len(plan.trials) * cpu.trial_fixed_s[launch]
    eval_seconds = eval_flops / cpu.eval_flops_per_s + models * cpu.eval_model_fixed_s
    source = "measured in this grid's storage" if measured else "CPU_THROUGHPUT (2-core machine)"
    trial_slots = _cpu_slots(res.cpus_per_worker * res.workers_per_trial)
    return WallClock("cpu", train_seconds, eval_seconds, min(res.max_concurrent_trials, trial_slots),
                     min(res.max_concurrent_evals, _cpu_slots(res.eval_cpus_per_worker)), source)
