"""What the evaluator is asked to do: a model (`ModelRef`) and its eval jobs (`EvalJob`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from evals.model_loading import is_uri, local_model_copy
from evals.results import ModelIdentity
from ptft.core.ids import content_hash

# Bump when a change to the engine or scoring can change a score: every cached result is recomputed.
ENGINE_VERSION = "ptft-evals-5"


@dataclass(frozen=True)
class ModelRef:
    """A model to evaluate (hub id + revision, or a local directory) and the identity its records carry.

    `adapter`: a peft adapter folder (local or in object storage) applied to that model; the model is
    then the adapter's base (docs/methods.md §4).
    """

    path_or_id: str
    revision: str | None = None
    identity: ModelIdentity | None = None  # None: a base model named after its path and revision
    adapter: str | None = None

    @classmethod
    def of(cls, path_or_id: str, revision: str | None = None, *, base_model: str | None = None,
           checkpoint: str | None = None, adapter: str | None = None, **identity: Any) -> ModelRef:
        """A reference whose identity defaults to the model itself: base_model = the path or hub id,
        checkpoint = the revision, else the directory's name, else "main"."""
        if checkpoint is None:
            local = os.path.isdir(path_or_id) or is_uri(path_or_id)
            checkpoint = revision or (os.path.basename(path_or_id.rstrip("/")) if local else "main")
        return cls(path_or_id, revision, ModelIdentity(base_model=base_model or path_or_id,
                                                       checkpoint=checkpoint, **identity), adapter)

    def __post_init__(self) -> None:
        if self.identity is None:  # checked at construction, before any work is done
            object.__setattr__(self, "identity", ModelRef.of(self.path_or_id, self.revision).identity)

    @property
    def is_local(self) -> bool:
        return os.path.isdir(self.path_or_id)

    def local_sources(self) -> tuple[str, str | None]:
        """Where `from_pretrained` reads the model and its adapter: a local copy of a folder in object
        storage (fetched once, `local_model_copy`), else the path or hub id as given."""
        def local(path: str) -> str:
            return local_model_copy(path) if is_uri(path) else path

        return local(self.path_or_id), (local(self.adapter) if self.adapter else None)

    def describe(self) -> str:
        return (f"{self.path_or_id}" + (f"@{self.revision}" if self.revision else "")
                + (f" + adapter {self.adapter}" if self.adapter else ""))


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
        named = {"model": model.path_or_id, "revision": model.revision, "dataset": self.dataset,
                 "fmt": self.fmt, "shots": self.shots, "mode": mode}
        if model.adapter:
            named["adapter"] = model.adapter
        digest = content_hash(named, length=8)
        return f"{self.dataset}.{self.fmt}.{self.shots}shot.{mode}.{digest}"
