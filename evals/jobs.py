"""What the evaluator is asked to do: a model (`ModelRef`) and its eval jobs (`EvalJob`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from evals.model_loading import is_uri
from evals.results import ModelKind
from ptft.core.ids import content_hash

# Bump when a change to the engine or scoring can change a score: every cached result is recomputed.
ENGINE_VERSION = "ptft-evals-3"


@dataclass(frozen=True)
class ModelRef:
    """A model to evaluate (hub id + revision, or a local directory) and the identity its records carry."""

    path_or_id: str
    revision: str | None = None
    model_kind: ModelKind = "base"
    base_model: str | None = None  # default: path_or_id
    checkpoint: str | None = None  # default: the revision, else the directory name, else "main"
    checkpoint_step: int | None = None
    train_dataset: str | None = None
    train_format: str | None = None
    lr: float | None = None
    trial_id: str | None = None
    epochs: int | None = None

    def __post_init__(self) -> None:
        # The same rules as ResultRecord's, checked before any work is done.
        if self.model_kind not in ("base", "finetuned"):
            raise ValueError(f"model_kind: {self.model_kind!r} is not 'base' or 'finetuned'")
        if self.model_kind == "finetuned" and not self.train_dataset:
            raise ValueError(f"fine-tuned model {self.path_or_id!r} needs train_dataset")
        if self.model_kind == "base" and (self.train_dataset or self.lr is not None):
            raise ValueError(f"base model {self.path_or_id!r} has no train_dataset or lr")

    @property
    def is_local(self) -> bool:
        return os.path.isdir(self.path_or_id)

    @property
    def base_model_name(self) -> str:
        return self.base_model or self.path_or_id

    @property
    def checkpoint_name(self) -> str:
        if self.checkpoint:
            return self.checkpoint
        if self.revision:
            return self.revision
        if self.is_local or is_uri(self.path_or_id):  # a folder, here or in object storage
            return os.path.basename(self.path_or_id.rstrip("/"))
        return "main"

    def describe(self) -> str:
        return f"{self.path_or_id}" + (f"@{self.revision}" if self.revision else "")


@dataclass(frozen=True)
class EvalJob:
    """One (dataset, format, shots, mode) to score a model on; `mode` None means `EvalConfig.mode`."""

    dataset: str
    fmt: str = "default"
    shots: int = 4
    mode: str | None = None
    job_id: str | None = None

    def resolved_mode(self, default: str) -> str:
        return self.mode or default

    def resolved_id(self, model: ModelRef, default_mode: str) -> str:
        """The given id, else a readable one that is unique per (model path and revision, job).

        Deliberately without the template checksum or weights hash: a job whose inputs changed keeps
        its file name and is recomputed in place (the cache key inside the record decides).
        """
        if self.job_id:
            return self.job_id
        mode = self.resolved_mode(default_mode)
        digest = content_hash({"model": model.path_or_id, "revision": model.revision, "dataset": self.dataset,
                               "fmt": self.fmt, "shots": self.shots, "mode": mode}, length=8)
        return f"{self.dataset}.{self.fmt}.{self.shots}shot.{mode}.{digest}"
