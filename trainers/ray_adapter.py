"""The one place `trainers/` touches Ray: run `train_worker` as a Ray Train `TorchTrainer` worker.

Ray Train (V2) has already made the process group, so `train_worker` reuses it. Every rank saves its own
DeepSpeed shards into its own temp dir and reports it; Ray merges the per-rank uploads into one checkpoint
(STACK.md §4.4: if only rank 0 reported, rank 1's ZeRO shards would be missing on restore). On a retry or
`Tuner.restore`, `ray.train.get_checkpoint()` hands that merged checkpoint back and training resumes.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import Any

import ray.train
from ray.train import Checkpoint

from trainers.job import TrainJob
from trainers.sft import train_worker


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


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """`TorchTrainer(train_loop_per_worker=...)` entry point; `config["job"]` is a `TrainJob` dump."""
    train_worker(TrainJob.model_validate(config["job"]), reporter=RayReporter())


def train_loop_config(job: TrainJob) -> dict[str, Any]:
    """The `train_loop_config` that carries `job` to the workers."""
    return {"job": job.model_dump(mode="json")}


def torch_trainer(job: TrainJob, *, num_workers: int, use_gpu: bool,
                  resources_per_worker: dict[str, float] | None = None,
                  run_config: ray.train.RunConfig | None = None) -> Any:
    """A `TorchTrainer` that runs `job` on `num_workers` workers (ray_jobs adds the Tune callback etc.).

    Re-creating it with the same `run_config.name` and `storage_path` resumes from the run's latest
    checkpoint (Train V2 has no `resume_from_checkpoint`).
    """
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=train_loop_config(job),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker=resources_per_worker),
        run_config=run_config,
    )


__all__ = ["RayReporter", "torch_trainer", "train_loop_config", "train_loop_per_worker"]
