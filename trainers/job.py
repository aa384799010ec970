"""What a trial's workers are given and where they report: `TrainJob`, `TrainResult`, `Reporter`.

Kept free of torch and DeepSpeed imports, so the planner and `ray_jobs/` can build jobs cheaply.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ptft.core import storage
from ptft.core.layout import TrainOutput
from ptft.tasks.corpora import CorpusSpec
from ptft.tasks.declared import TaskDeclaration
from trainers.config import TrainConfig
from trainers.methods import FullMethod, Method
from trainers.objectives import ObjectiveConfig, SftConfig


class TrainJob(BaseModel):
    """Everything one trial's workers need; serialisable, so Ray and torchrun can ship it as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trial_id: str
    cell_id: str
    model: str = Field(description="Hub id or local directory of the starting checkpoint.")
    revision: str | None = Field(None, description="Hub revision (branch); None for a local directory.")
    dataset: str = Field(description="tasks registry name, e.g. 'mnli'.")
    fmt: str = Field("default", description="Training prompt format.")
    data_mode: Literal["faithful", "fixed"] = "fixed"
    data_source: str = Field("hub", description="'hub', 'mini', or a folder of <task>/<split>.jsonl.")
    data_limit: int | None = Field(None, ge=1, description="Cap on rendered rows (smoke runs).")
    lr: float = Field(gt=0.0)
    config: TrainConfig = Field(default_factory=TrainConfig)
    method: Method = Field(default_factory=FullMethod, description="Fine-tuning method (docs/methods.md).")
    objective: ObjectiveConfig = Field(default_factory=SftConfig,
                                       description="What the run optimises: sft, continual_pt, dpo (trainers/objectives.py).")
    output_dir: str = Field(description="Final model, manifest.json and COMPLETED go here.")
    checkpoint_dir: str | None = Field(
        None, description="Bare runs: local folder for DeepSpeed checkpoints (default <output_dir>/checkpoints).")
    resume: bool = Field(True, description="Bare runs: continue from checkpoint_dir when it holds a checkpoint.")
    tasks: tuple[TaskDeclaration, ...] = Field(
        (), description="Declared tasks (docs/tasks.md) the worker registers before building data.")
    corpora: tuple[CorpusSpec, ...] = Field(
        (), description="The spec's corpora (docs/continual_pt.md) the worker registers before building data.")
    remote_folders: dict[str, str] = Field(
        default_factory=dict, description="Local folder -> the object-storage folder it copies (a rejection-"
        "sampled kept set under s3:// storage): each worker fetches it before it registers the tasks.")


@dataclass(frozen=True)
class TrainResult:
    output_dir: str
    manifest: dict[str, Any]
    skipped: bool = False  # True: the output_dir was already COMPLETED


class Reporter(Protocol):
    """Where a worker reports metrics and checkpoints, and where it finds one to resume from."""

    def resume_dir(self) -> contextlib.AbstractContextManager[str | None]: ...

    def checkpoint_dir(self) -> contextlib.AbstractContextManager[str]: ...

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None: ...


class LocalReporter:
    """Bare runs: checkpoints live in `job.checkpoint_dir`; rank 0 logs one JSON line per report."""

    def __init__(self, job: TrainJob) -> None:
        self.job = job
        self.directory = job.checkpoint_dir or default_checkpoint_dir(job)
        self.history: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def resume_dir(self) -> Iterator[str | None]:
        from trainers.checkpointing import has_checkpoint

        yield self.directory if self.job.resume and has_checkpoint(self.directory) else None

    @contextlib.contextmanager
    def checkpoint_dir(self) -> Iterator[str]:
        yield self.directory

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        self.history.append(metrics)
        if _rank() == 0:
            print(json.dumps({"trial_id": self.job.trial_id, **metrics}), flush=True)


def default_checkpoint_dir(job: TrainJob) -> str:
    """<output_dir>/checkpoints, or a local temp folder when output_dir is an object store (DeepSpeed
    writes checkpoints with plain file I/O)."""
    if storage.is_remote(job.output_dir):
        return os.path.join(tempfile.gettempdir(), "ptft-checkpoints", job.trial_id)
    return TrainOutput(job.output_dir).local_checkpoints()




def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
