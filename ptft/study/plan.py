"""The plan: a validated spec expanded into cells, trials and eval jobs, each with a content-hashed id.

- A **cell** is (model, checkpoint, training dataset, fine-tuning method, training format); its id hashes
  everything that defines the cell: model, checkpoint, dataset, format, data mode and source, epochs,
  seed, template version, and the method's defining fields (full fine-tuning adds nothing, so grids
  written before methods existed keep their ids).
- A **trial** is a cell at one learning rate; its id adds the lr and the other training hyperparameters.
- An **eval job** is (model, eval dataset, eval format, shots). Base checkpoints are evaluated once per
  grid and shared by all their cells. A fine-tuned model is either "the winning lr of a cell" (its id
  covers the cell's whole lr set, so adding an lr re-evaluates the new winner) or one trial.

The same spec gives the same ids on any machine; change any defining field and the id changes. A spec of
several `models:` gives each model's entries its name (`model_name`); a spec of one `model:` leaves it None,
so its ids, trial names and eval folders are what they were before `models:` existed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from evals.jobs import EvalJob
from ptft.core.identity import identity_of
from ptft.core.ids import content_hash
from ptft.study.checkpoints import CheckpointRef
from ptft.study.spec import ExperimentSpec, qualified_label
from trainers.config import TrainConfig
from trainers.methods import FullMethod, Method

# Bump when the meaning of an id's fields changes, so old results are never mistaken for new ones.
# 2: identity read from the fields' own declarations (`ptft.core.identity`); trial ids hash the cell,
#    the lr and every defining TrainConfig field (MFU peak, val cadence, padding multiple and ZeRO
#    stage no longer move them); eval-job ids ignore the device.
PLAN_VERSION = 2


def _template_version(dataset: str, fmt: str, mode: str) -> str:
    from ptft import tasks

    return tasks.template_version(dataset, fmt, mode)


def _model_prefix(model_name: str | None) -> str:
    """The start of a readable name (Tune trials, folders, W&B groups): the model's name, file-safe."""
    return "" if model_name is None else re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name).strip("_") + "-"


@dataclass(frozen=True)
class Cell:
    cell_id: str
    checkpoint: CheckpointRef
    train_dataset: str
    train_format: str
    epochs: int
    lrs: tuple[float, ...]
    method: Any = field(default_factory=FullMethod)  # a trainers.methods.Method
    model_name: str | None = None  # which of the spec's `models:` (None: the spec's one `model:`)

    @property
    def label(self) -> str:
        """Readable name of the cell (W&B groups, logs)."""
        method = "" if self.method.label == "full" else f"-{self.method.label}"
        return (f"{_model_prefix(self.model_name)}{self.train_dataset}-{self.train_format}{method}-"
                f"ckpt{self.checkpoint.label}")

    @property
    def checkpoint_label(self) -> str:
        """The checkpoint as tables show it: its label, after its model's name in a spec of several."""
        return qualified_label(self.model_name, self.checkpoint.label)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["method"] = self.method.model_dump(mode="json") | {"label": self.method.label}
        out["checkpoint"] = self.checkpoint.label
        out["checkpoint_step"] = self.checkpoint.step
        out["lrs"] = list(self.lrs)
        return out


class Trial(BaseModel):
    """A cell at one learning rate: everything its training job needs, as the spec names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trial_id: str
    cell_id: str
    lr: float
    checkpoint: CheckpointRef
    train_dataset: str
    train_format: str
    data_mode: Literal["faithful", "fixed"]
    config: TrainConfig  # epochs included (a dataset may override them)
    method: Method = FullMethod()
    model_name: str | None = None  # which of the spec's `models:` (None: the spec's one `model:`)

    @property
    def epochs(self) -> int:
        return self.config.epochs

    @property
    def name(self) -> str:
        """Readable, unique name for Tune trials, folders and W&B runs."""
        method = "" if self.method.label == "full" else f"-{self.method.label}"
        return (f"{_model_prefix(self.model_name)}{self.train_dataset}-{self.train_format}{method}-"
                f"ckpt{self.checkpoint.label}-lr{self.lr:g}-{self.trial_id}")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json") | {"checkpoint": self.checkpoint.label, "name": self.name}


@dataclass(frozen=True)
class PlannedEval:
    """One eval job of the plan and the model it scores: a base checkpoint, a cell's winner, or a trial."""

    job: EvalJob  # dataset, format, shots, mode and the job id
    # "base:<checkpoint>" ("base:<model name>-<checkpoint>" in models:), "winner:<cell_id>" or "trial:<trial_id>"
    model: str
    model_kind: Literal["base", "finetuned"]
    checkpoint: str  # the checkpoint's label
    cell_id: str | None
    trial_id: str | None
    model_name: str | None = None  # which of the spec's `models:` (None: the spec's one `model:`)

    @property
    def job_id(self) -> str:
        assert self.job.job_id is not None
        return self.job.job_id

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "model": self.model, "model_kind": self.model_kind,
                "model_name": self.model_name, "checkpoint": self.checkpoint, "cell_id": self.cell_id,
                "trial_id": self.trial_id,
                "eval_dataset": self.job.dataset, "eval_format": self.job.fmt, "shots": self.job.shots,
                "mode": self.job.mode}


@dataclass
class Plan:
    spec: ExperimentSpec
    cells: list[Cell]
    trials: list[Trial]
    eval_jobs: list[PlannedEval]
    skipped_eval_pairs: list[tuple[str, str]] = field(default_factory=list)

    def cell(self, cell_id: str) -> Cell:
        return next(c for c in self.cells if c.cell_id == cell_id)

    def trials_of(self, cell_id: str) -> list[Trial]:
        return [t for t in self.trials if t.cell_id == cell_id]

    def eval_models(self) -> dict[str, list[PlannedEval]]:
        """Eval jobs grouped by model: each model is loaded once for all its jobs."""
        grouped: dict[str, list[PlannedEval]] = {}
        for job in self.eval_jobs:
            grouped.setdefault(job.model, []).append(job)
        return grouped

    def to_json(self) -> dict[str, Any]:
        return {"plan_version": PLAN_VERSION, "name": self.spec.name, "cells": [c.to_json() for c in self.cells],
                "trials": [t.to_json() for t in self.trials], "eval_jobs": [j.to_json() for j in self.eval_jobs]}


def build_plan(spec: ExperimentSpec) -> Plan:
    """Expand a validated spec into cells, trials and eval jobs: per model, per checkpoint."""
    train, evals = spec.train, spec.eval
    cells: list[Cell] = []
    trials: list[Trial] = []
    for model in spec.model_specs():
        model_name = spec.model_name_of(model)
        for ref in model.checkpoint_refs():
            for entry in train.datasets:
                config = train.train_config(epochs=train.epochs_for(entry))
                for method_spec in train.methods_for(entry):
                    method = method_spec.method
                    lrs = tuple(train.lrs_for(entry, method_spec))
                    for fmt in train.formats_for(entry):
                        defining = {
                            "v": PLAN_VERSION, "model": model.id, "checkpoint": ref.identity(),
                            "dataset": entry.name, "format": fmt, "data_mode": train.mode,
                            "data_source": spec.data.source, "epochs": config.epochs, "seed": config.seed,
                            "template": _template_version(entry.name, fmt, train.mode),
                        }
                        if not method.trains_all_weights:
                            defining["method"] = method.identity()
                        cell_id = content_hash(defining)
                        cells.append(Cell(cell_id, ref, entry.name, fmt, config.epochs, lrs, method, model_name))
                        for lr in lrs:
                            trial_id = content_hash({"v": PLAN_VERSION, "cell": cell_id, "lr": lr,
                                                     "train": identity_of(config)})
                            trials.append(Trial(trial_id=trial_id, cell_id=cell_id, lr=lr, checkpoint=ref,
                                                train_dataset=entry.name, train_format=fmt, data_mode=train.mode,
                                                config=config, method=method, model_name=model_name))

    pairs, skipped = evals.combinations()
    settings = identity_of(evals.eval_config())
    models: list[tuple[str, dict[str, Any], str, str, str | None, str | None, str | None]] = []
    if evals.base:
        for model in spec.model_specs():
            model_name = spec.model_name_of(model)
            for ref in model.checkpoint_refs():
                ident = {"model": model.id, "checkpoint": ref.identity()}
                models.append((f"base:{qualified_label(model_name, ref.label)}", ident, "base", ref.label, None,
                               None, model_name))
    for cell in cells:
        cell_trials = [t for t in trials if t.cell_id == cell.cell_id]
        if evals.models == "winners":
            ident = {"cell": cell.cell_id, "select": "min_val_loss",
                     "trials": sorted(t.trial_id for t in cell_trials)}
            models.append((f"winner:{cell.cell_id}", ident, "finetuned", cell.checkpoint.label,
                           cell.cell_id, None, cell.model_name))
        else:
            for t in cell_trials:
                models.append((f"trial:{t.trial_id}", {"trial": t.trial_id}, "finetuned",
                               cell.checkpoint.label, cell.cell_id, t.trial_id, cell.model_name))

    jobs: list[PlannedEval] = []
    for model_key, ident, kind, checkpoint, cell_id, trial_id, model_name in models:
        for dataset, fmt in pairs:
            template = _template_version(dataset, fmt, evals.mode)
            for shots in evals.shots:
                job_id = content_hash({"v": PLAN_VERSION, "model": ident, "dataset": dataset, "format": fmt,
                                       "shots": shots, "settings": settings, "data_source": spec.data.source,
                                       "template": template})
                job = EvalJob(dataset=dataset, fmt=fmt, shots=shots, mode=evals.mode, job_id=job_id)
                jobs.append(PlannedEval(job, model_key, kind, checkpoint, cell_id, trial_id, model_name))
    return Plan(spec, cells, trials, jobs, skipped)
