"""Where a trial reports on Ray: `RayReporter` (a Ray Train worker: Ray's report and checkpoints),
`TuneReporter` (a one-worker trial inside its Tune trainable), and `GridReporter` around either (the
trial's curve, resume history and W&B run under the grid's storage).

Ray Train (V2) has already made the process group, so `train_worker` reuses it. Every rank saves its own
DeepSpeed shards into its own temp dir and reports it; Ray merges the per-rank uploads into one checkpoint
(docs/stack.md §4.4: if only rank 0 reported, rank 1's ZeRO shards would be missing on restore). On a retry or
`Tuner.restore`, `ray.train.get_checkpoint()` hands that merged checkpoint back and training resumes.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ray.train
from ray.train import Checkpoint

from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.core.wandb_settings import WandbSettings
from ptft.study.plan import Trial
from ray_jobs.wandb_runs import cell_group, finish_run, init_run, run_id, run_tags


class RayReporter:
    """`Reporter` for Ray Train workers: `ray.train.report` on every rank, resume from `get_checkpoint()`."""

    @contextlib.contextmanager
    def resume_dir(self) -> Iterator[str | None]:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield directory

    @contextlib.contextmanager
    def checkpoint_dir(self) -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="ptft-ckpt-") as directory:
            yield directory  # ray.train.report copies it to storage before the dir goes away

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        clean = {k: v for k, v in metrics.items() if v is not None}  # e.g. mfu on CPU
        checkpoint = Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(clean, checkpoint=checkpoint)


class TuneReporter:
    """`Reporter` for a one-worker trial that trains inside its Tune trainable: metrics go to Tune (ASHA
    reads them), checkpoints to the trial's own folder `<storage>/train/<trial_id>/`, which outlives the
    Tune experiment, so a retry or a new driver resumes from it. Object storage is staged locally."""

    def __init__(self, checkpoint_root: str, trial_id: str):
        self.root = checkpoint_root
        self.remote = storage.is_remote(checkpoint_root)
        self.local = (os.path.join(tempfile.gettempdir(), "ptft-checkpoints", trial_id) if self.remote
                      else checkpoint_root)

    @contextlib.contextmanager
    def resume_dir(self) -> Iterator[str | None]:
        from trainers.checkpointing import has_checkpoint

        files = storage.list_files(self.root) if self.remote else []
        if files:
            storage.download_dir(self.root, self.local, files)
        yield self.local if has_checkpoint(self.local) else None

    @contextlib.contextmanager
    def checkpoint_dir(self) -> Iterator[str]:
        os.makedirs(self.local, exist_ok=True)
        yield self.local  # save_training_state keeps only the newest tag here

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        from ray import tune

        if checkpoint_dir is not None and self.remote:
            storage.upload_dir(checkpoint_dir, self.root)
        tune.report({k: v for k, v in metrics.items() if v is not None})


# A crash injected into one trial for resume tests: "<trial_id>:<step>" (once; a marker remembers it).
INJECT_CRASH_ENV = "PTFT_INJECT_CRASH"


@dataclass(frozen=True)
class GridContext:
    """What a grid trial's rank-0 worker needs besides its `TrainJob`: where the grid keeps its files
    and how to open the trial's W&B run."""

    trial: Trial
    storage_root: str
    wandb: WandbSettings | None
    wandb_config: dict[str, Any]


class GridReporter:
    """Wraps the trainer's Ray reporter: records the trial's curve, logs W&B, and injects test crashes.

    Each curve point also carries `trial_seconds`, this attempt's wall time so far (model loading
    included): the driver reads the last one for the trial's console line."""

    def __init__(self, inner: RayReporter | TuneReporter, grid: GridContext, rank: int):
        self.started = time.monotonic()
        self.inner, self.rank = inner, rank
        self.trial = grid.trial
        self.layout = GridLayout(grid.storage_root)
        self.out = self.layout.trial(self.trial.trial_id)
        self.curve: list[dict[str, Any]] = storage.read_json(self.out.curve) if (
            rank == 0 and storage.exists(self.out.curve)) else []
        self.last_val_loss: float | None = None
        self.resumed = False
        self.run = None
        if rank == 0:
            self.run = init_run(grid.wandb, run_id=run_id("train", self.trial.trial_id), name=self.trial.name,
                                group=cell_group(self.trial), job_type="train", config=grid.wandb_config,
                                tags=run_tags(self.trial, f"lr:{self.trial.lr:g}"))
        target, _, step = os.environ.get(INJECT_CRASH_ENV, "").partition(":")
        self.crash_at = int(step) if target == self.trial.trial_id and step.isdigit() else None

    @contextlib.contextmanager
    def resume_dir(self) -> Iterator[str | None]:
        with self.inner.resume_dir() as directory:
            self.resumed = directory is not None
            yield directory

    def checkpoint_dir(self) -> contextlib.AbstractContextManager[str]:
        return self.inner.checkpoint_dir()

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        metrics = dict(metrics)
        if isinstance(metrics.get("val_loss"), (int, float)):
            self.last_val_loss = metrics["val_loss"]
        elif checkpoint_dir is not None:
            # Ray keeps the best checkpoint by val_loss; one reported without it carries the last known.
            metrics["val_loss"] = self.last_val_loss if self.last_val_loss is not None else math.inf
        if self.rank == 0:
            step = metrics.get("step")
            if self.resumed:  # first report after a resume: remember where training picked up
                self.resumed = False
                history = storage.read_json(self.out.resumes) if storage.exists(self.out.resumes) else []
                storage.atomic_write_json(self.out.resumes, history + [{"first_step_after_resume": step}])
            point = {**metrics, "trial_seconds": round(time.monotonic() - self.started, 3)}
            self.curve = [p for p in self.curve if p.get("step") != step] + [point]
            storage.atomic_write_json(self.out.curve, self.curve)
            if self.run is not None:
                self.run.log({k: v for k, v in point.items() if isinstance(v, (int, float))}, step=step)
        self.inner.report(metrics, checkpoint_dir=checkpoint_dir)
        if self.crash_at is not None and checkpoint_dir is not None and metrics.get("step", 0) >= self.crash_at:
            marker = self.layout.fault_marker(self.trial.trial_id)
            if not storage.exists(marker):
                storage.atomic_write_text(marker, "crashed once on purpose\n")
                raise RuntimeError(f"injected crash in trial {self.trial.trial_id} at step {metrics['step']}")

    def finish(self) -> None:
        finish_run(self.run)
