"""Cost estimate of a plan: tokens, FLOPs, GPU-hours and wall-clock time where it will run, before anything runs.

Training FLOPs ~= 6 * N * tokens (forward + backward) for full fine-tuning; a peft method's frozen base
skips its weight gradients (4 * N * tokens), LoRA adds 6 FLOPs per adapter weight per token, and prompt
methods' virtual tokens are tokens of every example (docs/methods.md §5). Evaluation ~= 2 * N per token
processed (prompt forward passes plus greedy generation with a KV cache). Memory is the model states a
trial holds before ZeRO partitions them: weights, gradients and AdamW moments of what trains. On GPUs, hours divide by MFU x peak (both flags).
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
from dataclasses import asdict, dataclass, field

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
class MethodCost:
    """What one method's trials cost: trainable parameters, FLOPs, and model-state memory per trial."""

    trainable_params: int | None
    trials: int
    train_tokens: int
    train_flops: float
    model_state_bytes: int | None  # weights + gradients + optimizer state, before ZeRO partitioning


def lora_params(method, config: dict | None) -> int | None:
    """LoRA adapter weights r·(in + out) over the targeted linear layers, from a config.json (OLMo/Llama-
    style and GPT-NeoX shapes); None when the config is unknown."""
    if not config:
        return None
    d, ff, layers = config.get("hidden_size"), config.get("intermediate_size"), config.get("num_hidden_layers")
    if not all(isinstance(x, int) for x in (d, ff, layers)):
        return None
    kv = d * config.get("num_key_value_heads", config.get("num_attention_heads", 1)) // max(
        1, config.get("num_attention_heads", 1))
    if config.get("model_type") == "gpt_neox":
        shapes = {"query_key_value": (d, 3 * d), "dense": (d, d), "dense_h_to_4h": (d, ff), "dense_4h_to_h": (ff, d)}
    else:
        shapes = {"q_proj": (d, d), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (d, d),
                  "gate_proj": (d, ff), "up_proj": (d, ff), "down_proj": (ff, d)}
    targets = method.target_modules
    if targets == "all-linear":
        names = list(shapes)
    elif targets == "attention":
        from trainers.methods import ATTENTION_MODULES

        names = list(ATTENTION_MODULES.get(config.get("model_type", ""), ()))
    else:
        names = [t for t in targets if t in shapes]
    return layers * sum(method.r * sum(shapes[n]) for n in names if n in shapes)


def method_cost(method, n: int | None, trial_tokens: list[int], examples: list[int], config: dict | None,
                precision_bytes: int) -> MethodCost:
    """FLOPs and model-state memory of one method's trials (`examples`: examples per trial, for the
    virtual tokens every example carries)."""
    tokens = sum(trial_tokens) + method.prefix_length * sum(examples)
    if method.trains_all_weights:
        trainable = n
        flops = 6.0 * n * tokens if n else 0.0
    else:
        if method.name == "lora":
            trainable = lora_params(method, config)
        elif config and isinstance(config.get("hidden_size"), int):
            hidden = config["hidden_size"]
            encoder = (2 * hidden * method.encoder_hidden + method.encoder_hidden ** 2
                       if method.name == "p_tuning" else 0)
            trainable = method.virtual_tokens * hidden + encoder
        else:
            trainable = None
        adapter_matmuls = (trainable or 0) if method.name == "lora" else 0
        flops = (4.0 * n + 6.0 * adapter_matmuls) * tokens if n else 0.0
    # Per trained weight: the weight, its gradient (precision_bytes each) and fp32 master + two moments.
    trained_bytes = (2 * precision_bytes + 12) * trainable if trainable is not None else None
    frozen = (n - (trainable or 0)) * precision_bytes if n and not method.trains_all_weights else 0
    memory = trained_bytes + frozen if trained_bytes is not None else None
    return MethodCost(trainable, len(trial_tokens), tokens, flops, memory)


def _local_config(model_id: str, base_dir: str) -> dict | None:
    path = model_id if os.path.isabs(model_id) else os.path.join(base_dir, model_id)
    config_file = os.path.join(path, "config.json")
    if os.path.isfile(config_file):
        with open(config_file, encoding="utf-8") as f:
            return json.load(f)
    return None


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
    methods: dict[str, MethodCost] = field(default_factory=dict)  # per method label

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
    cfg = _local_config(model_id, base_dir)
    if cfg is not None:
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
    models = {spec.model_name_of(m): m for m in spec.model_specs()}
    params = {name: model_params(m.id, m.num_params, spec.base_dir) for name, m in models.items()}
    # One count to report and to size hours by: unknown if any model's is; with several, the largest.
    n = None if None in params.values() else max(p for p in params.values() if p is not None)
    peak = peak_flops or GPU_PEAK_FLOPS.get(gpu.lower())
    if peak is None:
        raise ValueError(f"unknown GPU {gpu!r}; known: {sorted(GPU_PEAK_FLOPS)} (or pass a peak in FLOP/s)")

    source = "hub" if spec.data.source == "hub" else spec.data_source()
    per_trial: dict[str, int] = {}
    examples_per_trial: dict[str, int] = {}
    for trial in plan.trials:
        cfg = trial.config  # a recipe stage may set its own steps, lengths and batch
        per_step = cfg.batch_size * cfg.grad_accum * spec.resources.workers_per_trial
        if trial.objective.kind != "sft":
            # Corpora and preference sets: packed (or paired) sequences of about max_length per example.
            tokens = cfg.max_steps * per_step * cfg.max_length if cfg.max_steps else 0
            per_trial[trial.trial_id] = tokens
            examples_per_trial[trial.trial_id] = cfg.max_steps * per_step if cfg.max_steps else 0
            continue
        task = tasks.get_task(trial.train_dataset)
        rows = _train_rows(task, source)
        if cfg.val_size:
            rows = max(rows - cfg.val_size, 0)
        tokens = rows * min(task.tokens_per_example, cfg.max_length) * trial.epochs
        if cfg.max_steps:  # a step cap bounds the tokens too
            tokens = min(tokens, cfg.max_steps * per_step * task.tokens_per_example)
        per_trial[trial.trial_id] = tokens
        examples_per_trial[trial.trial_id] = tokens // max(1, min(task.tokens_per_example, cfg.max_length))
    train_tokens = sum(per_trial.values())
    precision_bytes = 2 if spec.resources.gpus_per_worker and spec.train.precision != "fp32" else 4
    methods: dict[str, MethodCost] = {}
    for label in dict.fromkeys(t.method.label for t in plan.trials):
        costs = []
        for name, model in models.items():  # each model's trials at its own size
            trials = [t for t in plan.trials if t.method.label == label and t.model_name == name]
            if trials:
                costs.append(method_cost(trials[0].method, params[name], [per_trial[t.trial_id] for t in trials],
                                         [examples_per_trial[t.trial_id] for t in trials],
                                         _local_config(model.id, spec.base_dir), precision_bytes))
        methods[label] = _combined(costs)

    eval_tokens = 0
    eval_flops = 0.0
    limit = spec.eval.limit
    for planned in plan.eval_jobs:
        job = planned.job
        task = tasks.get_task(job.dataset)
        rows = _eval_rows(task, job.mode or spec.eval.mode, source)
        examples = min(rows, limit) if limit else rows
        context = min(task.tokens_per_example * (job.shots + 1), spec.eval.max_length)
        generated = spec.eval.max_new_tokens if task.task_type in GENERATION_TYPES else 0
        eval_tokens += examples * (context + generated)
        eval_flops += 2.0 * (params[planned.model_name] or 0) * examples * (context + generated)

    train_flops = sum(cost.train_flops for cost in methods.values())
    eval_flops = eval_flops if n else 0.0
    train_hours = train_flops / (mfu * peak) / 3600 if n else None
    eval_hours = eval_flops / (mfu * peak) / 3600 if n else None
    hours = train_hours + eval_hours if n else None
    wall = _wall_clock(plan, n, train_flops, eval_flops, train_hours, eval_hours) if n else None
    return Estimate(n, per_trial, train_tokens, eval_tokens, train_flops, eval_flops, gpu, peak, mfu, hours,
                    train_hours, eval_hours, wall, "hub" if source == "hub" else "local", methods)


def _combined(costs: list[MethodCost]) -> MethodCost:
    """One method's cost over the grid's models: work adds up; per-trial sizes are the largest model's."""
    if len(costs) == 1:
        return costs[0]

    def largest(values: list[int | None]) -> int | None:
        return None if None in values else max(v for v in values if v is not None)

    return MethodCost(largest([c.trainable_params for c in costs]), sum(c.trials for c in costs),
                      sum(c.train_tokens for c in costs), sum(c.train_flops for c in costs),
                      largest([c.model_state_bytes for c in costs]))


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
