"""The SFT recipe: one function per worker, `train_worker(job, reporter)`, read top to bottom.

It runs as a single process, under `torchrun` (`torchrun --nproc_per_node N -m trainers.sft job.json`),
inside a Ray Tune trainable or a Ray Train worker (`ray_jobs/train_trials.py`). Steps:

1. done already?  an output_dir with COMPLETED returns its manifest at once;
2. distributed setup (gloo on CPU, nccl on GPU; reuses a process group that Ray or a test made);
3. data from the job's objective (`trainers/objectives.py`; SFT: `tasks.training_set` -> validation split
   -> tokens and labels -> rows, packed or not) -> sampler;
4. model and DeepSpeed engine (ZeRO stage, precision, AdamW, linear warmup/decay, all from TrainConfig);
5. resume from the reporter's checkpoint: weights, optimizer, scheduler, sampler position, RNG;
6. the loop: grad_accum micro-batches per optimizer step, reports (loss, lr, tokens/s, MFU, memory,
   validation loss) and checkpoints on their cadence, a checkpoint at the end;
7. export: consolidated HF model + tokenizer, manifest, COMPLETED marker (last).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

import ptft
from ptft.core import storage
from ptft.core.integrity import model_files
from ptft.core.layout import TrainOutput
from ptft.core.version import code_version
from ptft.tasks.corpora import register_corpus
from ptft.tasks.declared import register_declared
from trainers.adapters import apply_method, parameter_counts
from trainers.checkpointing import (
    export_adapter,
    export_model,
    load_training_state,
    read_completed,
    save_training_state,
    write_manifest_and_marker,
)
from trainers.collate import EpochSampler
from trainers.deepspeed_config import (
    build_client_optimizer,
    deepspeed_config,
    linear_warmup_schedule,
    parameter_groups,
    warmup_steps,
)
from trainers.job import LocalReporter, Reporter, TrainJob, TrainResult
from trainers.metrics import (
    FlopsModel,
    ThroughputMeter,
    peak_flops_for,
    peak_memory_bytes,
    throughput_metrics,
)
from trainers.objectives import TrainingData, objective_for

__all__ = ["LocalReporter", "Reporter", "TrainJob", "TrainResult", "main", "train_worker"]

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """What the loop needs to continue exactly where it stopped (saved as DeepSpeed client_state)."""

    step: int = 0
    micro_index: int = 0  # micro-batches consumed: the sampler's position across epochs
    real_tokens: int = 0
    padded_tokens: int = 0
    target_tokens: int = 0
    train_seconds: float = 0.0


def train_worker(job: TrainJob, reporter: Reporter | None = None) -> TrainResult:
    """Run (or resume, or skip) one trial on this worker; every rank calls it with the same job."""
    for local, uri in job.remote_folders.items():  # on this node too (the driver's copy is on its own)
        storage.local_copy(uri, local)
    for declaration in job.tasks:  # a Ray worker never read the spec: its declared tasks come with the job
        register_declared(declaration)
    for corpus in job.corpora:
        register_corpus(corpus)
    done = read_completed(job.output_dir)
    if done is not None:
        return TrainResult(job.output_dir, done, skipped=True)
    cfg = job.config
    reporter = reporter or LocalReporter(job)

    from deepspeed.accelerator import get_accelerator

    on_gpu = get_accelerator().device_name() == "cuda"
    rank, world_size = _setup_distributed(on_gpu)
    _seed_everything(cfg.seed)

    # Data. Every rank builds the same rows; the sampler picks each rank's share.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(job.model, revision=job.revision)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    objective = objective_for(job.objective)
    data = objective.load_data(job, tokenizer)
    sampler = EpochSampler(len(data.rows), cfg.batch_size, world_size, rank, cfg.seed)
    total_steps = cfg.epochs * sampler.micro_batches_per_epoch // cfg.grad_accum
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    if total_steps < 1:
        raise ValueError(f"{len(data.rows)} rows give no full optimizer step of {cfg.grad_accum} micro-batches")

    # Model and engine.
    import deepspeed

    attention = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(job.model, revision=job.revision, dtype=torch.float32, **attention)
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        # Non-reentrant: with frozen base weights (peft) the reentrant variant sees no input needing grad.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    flops_model = FlopsModel.from_model(model)  # before ZeRO-3 partitions the parameters
    model = apply_method(model, job.method, tokenizer_path=job.model, revision=job.revision)
    params = parameter_counts(model)
    if not job.method.trains_all_weights:
        adapter_matmuls = params["trainable"] if job.method.name == "lora" else 0
        flops_model = flops_model.for_method(frozen_base=True, adapter_matmul_params=adapter_matmuls)
    ds_config = deepspeed_config(cfg, lr=job.lr, world_size=world_size, on_gpu=on_gpu)
    groups = parameter_groups(model, cfg.weight_decay)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=groups,
        optimizer=None if on_gpu else build_client_optimizer(groups, cfg, job.lr),
        lr_scheduler=linear_warmup_schedule(total_steps, warmup_steps(cfg, total_steps)),
        config=ds_config,
    )
    peak = cfg.peak_flops or (peak_flops_for(torch.cuda.get_device_name()) if on_gpu else None)

    # Resume.
    state = TrainState()
    metrics: dict[str, Any] = {}  # the last report's; restored so a run resumed at its end can still export
    with reporter.resume_dir() as resume_from:
        if resume_from is not None:
            client_state = load_training_state(engine, resume_from, strict=job.method.trains_all_weights)
            state = TrainState(**client_state["train_state"])
            metrics = client_state.get("metrics", {})
            log.info("resumed at step %d (micro-batch %d)", state.step, state.micro_index)
    objective.prepare(engine, data, job)

    # The loop.
    meter = ThroughputMeter(flops_model)
    window_loss, window_steps = 0.0, 0
    val_every = cfg.val_every or cfg.log_every
    engine.train()
    while state.step < total_steps:
        lr = engine.get_lr()[0]
        meter.start()
        step_loss = torch.zeros((), device=engine.device)
        for _ in range(cfg.grad_accum):
            rows = [data.rows[i] for i in sampler.micro_batch(state.micro_index)]
            batch = objective.collate(rows, pad_id, cfg.pad_to_multiple_of)
            meter.add(batch.example_lengths, batch.padded_tokens, batch.target_tokens)
            loss_sum, count = objective.loss(engine, batch.to(engine.device))
            loss = loss_sum / count.clamp(min=1)  # token mean per micro-batch, as open-instruct
            engine.backward(loss)  # DeepSpeed divides by grad_accum
            engine.step()  # ... and steps the optimizer and the schedule on the last micro-batch only
            step_loss += loss.detach() / cfg.grad_accum
            state.micro_index += 1
        window_loss += step_loss.item()  # one host sync per optimizer step
        meter.stop()
        state.step += 1
        window_steps += 1

        last = state.step == total_steps
        save = last or (cfg.checkpoint_every is not None and state.step % cfg.checkpoint_every == 0)
        if not (save or state.step % cfg.log_every == 0):
            continue
        metrics = _step_metrics(engine, state, meter, window_loss, window_steps, lr, world_size, peak,
                                sampler) | {"trainable_parameters": params["trainable"],
                                            "total_parameters": params["total"]}
        if last or state.step % val_every == 0:
            metrics.update(objective.validate(engine, data, pad_id, cfg.batch_size))
        meter.reset()
        window_loss, window_steps = 0.0, 0
        if save:
            with reporter.checkpoint_dir() as directory:
                save_training_state(engine, directory, state.step, _client_state(state, sampler, metrics),
                                    frozen_excluded=not job.method.trains_all_weights)
                reporter.report(metrics, checkpoint_dir=directory)
        else:
            reporter.report(metrics)

    # Export: model and/or adapter, manifest, marker (last).
    out = TrainOutput(job.output_dir)
    if job.method.trains_all_weights:
        export_model(engine, tokenizer, job.output_dir, cfg.zero_stage)
    else:
        export_adapter(engine, tokenizer, job.output_dir, cfg.zero_stage, job.method, job.model, job.revision)
    manifest = _manifest(job, data, metrics, state, total_steps, world_size, ds_config) | {"parameters": params}
    if rank == 0:  # what COMPLETED vouches for
        if job.method.mergeable:
            manifest["model_files"] = model_files(out.model)
        if not job.method.trains_all_weights:
            manifest["adapter_files"] = model_files(out.adapter)
        write_manifest_and_marker(job.output_dir, manifest)
    if dist.is_initialized():
        dist.barrier()
    # The process may run the next trial (a reused Tune actor): drop the engine's hooks and buffers now.
    engine.destroy()
    return TrainResult(job.output_dir, manifest)


def release_accelerator_memory() -> None:
    """Hand cached accelerator memory back between trials that share a process."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _step_metrics(engine: Any, state: TrainState, meter: ThroughputMeter, window_loss: float,
                  window_steps: int, lr: float, world_size: int, peak: float | None,
                  sampler: EpochSampler) -> dict[str, Any]:
    """Metrics of the window since the last report, summed (tokens, FLOPs) or maxed (time) over ranks."""
    device = engine.device
    sums = torch.tensor([window_loss, meter.real_tokens, meter.padded_tokens, meter.target_tokens, meter.flops],
                        dtype=torch.float64, device=device)
    seconds = torch.tensor([meter.seconds], dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(sums)
        dist.all_reduce(seconds, op=dist.ReduceOp.MAX)  # ranks step in lockstep: the slowest sets the pace
    loss_sum, real, padded, targets, flops = sums.tolist()
    state.real_tokens += int(real)
    state.padded_tokens += int(padded)
    state.target_tokens += int(targets)
    state.train_seconds += seconds.item()
    grad_norm = engine.get_global_grad_norm()
    return {
        "step": state.step,
        "epoch": state.micro_index / sampler.micro_batches_per_epoch,
        "loss": loss_sum / world_size / window_steps,
        "lr": lr,
        "grad_norm": float(grad_norm) if grad_norm is not None else None,
        **throughput_metrics(real, padded, flops, seconds.item(), world_size, peak),
        "peak_memory_bytes": peak_memory_bytes(),
        "tokens_seen": state.real_tokens,
        "target_tokens_seen": state.target_tokens,
    }


def _client_state(state: TrainState, sampler: EpochSampler, metrics: dict[str, Any]) -> dict[str, Any]:
    epoch, position = sampler.position(state.micro_index)
    return {"train_state": dataclasses.asdict(state), "metrics": metrics,
            "sampler": {"epoch": epoch, "position": position, "seed": sampler.seed}}


def _manifest(job: TrainJob, data: TrainingData, metrics: dict[str, Any], state: TrainState,
              total_steps: int, world_size: int, ds_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "trial_id": job.trial_id,
        "cell_id": job.cell_id,
        "lr": job.lr,
        "job": job.model_dump(mode="json"),
        "metrics": metrics,
        "val_loss": metrics.get("val_loss"),
        "steps": {"total": total_steps, "done": state.step, "micro_batches": state.micro_index},
        "tokens": {"real": state.real_tokens, "padded": state.padded_tokens, "target": state.target_tokens,
                   "train_seconds": state.train_seconds},
        "data": {"checksum": data.checksum, "template_version": data.template_version,
                 "train": data.train.counts, "val": data.val.counts, "rows": len(data.rows), **data.extra},
        "world_size": world_size,
        "deepspeed_config": ds_config,
        "code_version": code_version(ptft.__version__),
        "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def _setup_distributed(on_gpu: bool) -> tuple[int, int]:
    """Join the process group that torchrun/Ray/a test made, or make a one-process one.

    Without RANK/WORLD_SIZE/MASTER_* in the environment DeepSpeed falls back to MPI discovery (mpi4py),
    so a bare single process gets those defaults.
    """
    if not dist.is_initialized():
        for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                           "MASTER_ADDR": "127.0.0.1"}.items():
            os.environ.setdefault(key, value)
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        if on_gpu:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def main(argv: list[str] | None = None) -> int:
    """`python -m trainers.sft JOB.json` (or under torchrun): run one trial from a serialised TrainJob."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m trainers.sft JOB.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        job = TrainJob.model_validate_json(f.read())
    result = train_worker(job)
    if _rank() == 0:
        print(json.dumps({"output_dir": result.output_dir, "skipped": result.skipped,
                          "val_loss": result.manifest.get("val_loss")}))
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
