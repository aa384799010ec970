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
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from evals.jobs import EvalJob
from evals.rejection import RejectionConfig
from evals.results import stage_name
from ptft.core.identity import identity_of
from ptft.core.ids import content_hash
from ptft.study.checkpoints import CheckpointRef
from ptft.study.spec import ExperimentSpec, qualified_label
from trainers.config import TrainConfig
from trainers.methods import FullMethod, Method
from trainers.objectives import ObjectiveConfig, SftConfig

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
    # Recipes (docs/recipes.md): the cell whose winner this cell starts from (None: the checkpoint), the
    # stage's objective, its depth, the stages before it ("continual_pt:news>sft:mnli/default") and the
    # recipes it belongs to (a shared prefix is one cell of several recipes).
    parent: str | None = None
    objective: Any = field(default_factory=SftConfig)
    stage: int = 1
    prior_stages: str | None = None
    recipes: tuple[str, ...] = ()
    last_in_recipe: bool = False  # the last stage of at least one recipe
    plain: bool = True  # from train.datasets (False: only recipes train it)
    # a rejection_sampling stage (docs/rejection_sampling.md): how its SFT data is sampled; its trials
    # train SFT on the kept set, which the grid writes before the stage's wave
    rejection: Any = None  # an evals.rejection.RejectionConfig

    @property
    def label(self) -> str:
        """Readable name of the cell (W&B groups, logs)."""
        return (f"{_model_prefix(self.model_name)}{_stage_prefix(self.objective, self.stage, self.rejection)}"
                f"{self.train_dataset}-{self.train_format}{_method_suffix(self.method)}-ckpt{self.checkpoint.label}")

    @property
    def step_name(self) -> str:
        """This stage as the next stage's `prior_stages` names it."""
        if self.rejection is not None:  # as its records name it (Trial.stage_kind)
            return f"rejection_sampling:{self.train_dataset}{_method_suffix(self.method)}"
        return _step_name(self.objective, self.train_dataset, self.train_format, self.method)

    @property
    def checkpoint_label(self) -> str:
        """The checkpoint as tables show it: its label, after its model's name in a spec of several."""
        return qualified_label(self.model_name, self.checkpoint.label)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["method"] = self.method.model_dump(mode="json") | {"label": self.method.label}
        out["objective"] = self.objective.model_dump(mode="json")
        out["recipes"] = list(self.recipes)
        out["checkpoint"] = self.checkpoint.label
        out["checkpoint_step"] = self.checkpoint.step
        out["lrs"] = list(self.lrs)
        out["rejection"] = None if self.rejection is None else self.rejection.model_dump(mode="json")
        return out


def _method_suffix(method: Any) -> str:
    return "" if method.label == "full" else f"-{method.label}"


def _stage_prefix(objective: Any, stage: int, rejection: Any = None) -> str:
    """Plain SFT cells keep today's names; a later stage or another objective says which it is."""
    kind = "rs-" if rejection is not None else "" if objective.kind == "sft" else f"{objective.kind}-"
    return (f"s{stage}-" if stage > 1 else "") + kind


def _step_name(objective: Any, dataset: str, fmt: str, method: Any) -> str:
    return stage_name(objective.kind, dataset, fmt, method.label)


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
    objective: ObjectiveConfig = SftConfig()
    parent_cell: str | None = None  # recipes: the cell whose winner this trial starts from
    stage: int = 1
    prior_stages: str | None = None
    rejection: RejectionConfig | None = None  # a rejection_sampling stage: SFT on its kept set

    @property
    def epochs(self) -> int:
        return self.config.epochs

    @property
    def stage_kind(self) -> str:
        """What the stage does, as records name it: the objective's kind, or rejection_sampling."""
        return "rejection_sampling" if self.rejection is not None else self.objective.kind

    @property
    def name(self) -> str:
        """Readable, unique name for Tune trials, folders and W&B runs."""
        return (f"{_model_prefix(self.model_name)}{_stage_prefix(self.objective, self.stage, self.rejection)}"
                f"{self.train_dataset}-{self.train_format}{_method_suffix(self.method)}-ckpt{self.checkpoint.label}-lr{self.lr:g}-"
                f"{self.trial_id}")

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

    by_id = {c.cell_id: c for c in cells}
    for model in spec.model_specs() if spec.recipes else []:
        for ref in model.checkpoint_refs():
            for recipe, stages in spec.recipes.items():
                _expand_recipe(spec, model, spec.model_name_of(model), ref, recipe, stages, by_id, trials)
    cells = list(by_id.values())

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
    evaluated = [c for c in cells if evals.after == "every_stage" or c.plain or c.last_in_recipe]
    for cell in evaluated:
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


def _stage_objective(stage: Any) -> Any:
    from pydantic import TypeAdapter

    fields: dict[str, Any] = {"kind": stage.kind}
    if stage.replay is not None:
        fields["replay"] = {"corpus": stage.replay.dataset, "ratio": stage.replay.ratio}
    if stage.beta is not None:
        fields["beta"] = stage.beta
    return TypeAdapter(ObjectiveConfig).validate_python(fields)


def _expand_recipe(spec: ExperimentSpec, model: Any, model_name: str | None, ref: CheckpointRef, recipe: str,
                   stages: list[Any], by_id: dict[str, Cell], trials: list[Trial]) -> None:
    """Add one recipe's cells on one checkpoint: every stage fans out over its datasets (and formats) and
    starts from each winner of the stage before. A cell already there (the same input and definition:
    a plain cell, or another recipe's prefix) is shared, so it trains once."""
    from ptft.study.spec_train import MethodSpec, TrainDataset

    train = spec.train
    frontier: list[Cell | None] = [None]
    for index, stage in enumerate(stages):
        rejection = stage.rejection_config(spec.base_dir) if stage.kind == "rejection_sampling" else None
        objective = SftConfig() if rejection is not None else _stage_objective(stage)
        method_spec = stage.method or MethodSpec(method=FullMethod())
        entries = stage.sft_datasets() if stage.kind == "sft" else [TrainDataset.model_construct(
            name=stage.dataset, formats=[rejection.fmt if rejection else "default"], learning_rates=None,
            epochs=None, methods=None)]
        last = index == len(stages) - 1
        next_frontier: list[Cell | None] = []
        for parent in frontier:
            for entry in entries:
                config, plain = stage.train_configs(train, entry)
                lrs = tuple(stage.lrs_for(train, entry, method_spec))
                formats = ((entry.formats or stage.formats or train.formats) if stage.kind == "sft"
                           else [rejection.fmt] if rejection else ["default"])
                for fmt in formats:
                    cell = _stage_cell(spec, model, model_name, ref, entry.name, fmt, config, plain, lrs,
                                       method_spec.method, objective, parent, trials, by_id, rejection)
                    existing = by_id.get(cell.cell_id)
                    if existing is not None and existing.lrs != cell.lrs:
                        raise ValueError(
                            f"recipes.{recipe}[{index}]: this stage is the cell {existing.label} already planned "
                            f"with learning rates {list(existing.lrs)}, here {list(cell.lrs)}; give them the same")
                    if existing is None:
                        by_id[cell.cell_id] = existing = cell
                        trials.extend(_cell_trials(cell, config, train.mode))
                    merged = replace(existing, recipes=tuple(dict.fromkeys([*existing.recipes, recipe])),
                                     last_in_recipe=existing.last_in_recipe or last, plain=existing.plain)
                    by_id[cell.cell_id] = merged
                    next_frontier.append(merged)
        frontier = next_frontier


def _stage_cell(spec: ExperimentSpec, model: Any, model_name: str | None, ref: CheckpointRef, dataset: str,
                fmt: str, config: TrainConfig, plain: TrainConfig, lrs: tuple[float, ...], method: Any,
                objective: Any, parent: Cell | None, trials: list[Trial], by_id: dict[str, Cell],
                rejection: RejectionConfig | None = None) -> Cell:
    """A recipe stage's cell. Its id is today's cell id when it is an SFT stage on the checkpoint with the
    train: section's settings (so it is the plain cell), plus what differs: the objective, the stage's own
    TrainConfig, and the input model (the parent cell and its lr set)."""
    train = spec.train
    template = _template_version(dataset, fmt, train.mode) if objective.kind == "sft" else dataset
    defining: dict[str, Any] = {
        "v": PLAN_VERSION, "model": model.id, "checkpoint": ref.identity(), "dataset": dataset, "format": fmt,
        "data_mode": train.mode, "data_source": spec.data.source, "epochs": config.epochs, "seed": config.seed,
        "template": template,
    }
    if not method.trains_all_weights:
        defining["method"] = method.identity()
    if objective.kind != "sft":
        defining["objective"] = identity_of(objective)
    if rejection is not None:  # its prompts are rendered in fixed mode, whatever train.mode says
        defining |= {"data_mode": "fixed", "template": _template_version(dataset, fmt, "fixed"),
                     "rejection": identity_of(rejection)}
    if config != plain:
        defining["train"] = identity_of(config)
    if parent is not None:
        defining["parent"] = {"cell": parent.cell_id,
                              "trials": sorted(t.trial_id for t in trials if t.cell_id == parent.cell_id)}
    prior = None if parent is None else (
        f"{parent.prior_stages}>{parent.step_name}" if parent.prior_stages else parent.step_name)
    return Cell(content_hash(defining), ref, dataset, fmt, config.epochs, lrs, method, model_name,
                parent=parent.cell_id if parent else None, objective=objective,
                stage=1 if parent is None else parent.stage + 1, prior_stages=prior, plain=False,
                rejection=rejection)


def _cell_trials(cell: Cell, config: TrainConfig, mode: str) -> list[Trial]:
    return [Trial(trial_id=content_hash({"v": PLAN_VERSION, "cell": cell.cell_id, "lr": lr, "train": identity_of(config)}),
                  cell_id=cell.cell_id, lr=lr, checkpoint=cell.checkpoint, train_dataset=cell.train_dataset,
                  train_format=cell.train_format,
                  data_mode="fixed" if cell.objective.kind != "sft" or cell.rejection is not None else mode,
                  config=config, method=cell.method, model_name=cell.model_name, objective=cell.objective,
                  parent_cell=cell.parent, stage=cell.stage, prior_stages=cell.prior_stages,
                  rejection=cell.rejection)
            for lr in cell.lrs]
