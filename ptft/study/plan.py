"""The plan: a validated spec expanded into cells, trials and eval jobs, each with a content-hashed id.

- A **cell** is (checkpoint, training dataset, training format); its id hashes everything that defines
  the cell: model, checkpoint, dataset, format, data mode and source, epochs, seed, template version.
- A **trial** is a cell at one learning rate; its id adds the lr and the other training hyperparameters.
- An **eval job** is (model, eval dataset, eval format, shots). Base checkpoints are evaluated once per
  grid and shared by all their cells. A fine-tuned model is either "the winning lr of a cell" (its id
  covers the cell's whole lr set, so adding an lr re-evaluates the new winner) or one trial.

The same spec gives the same ids on any machine; change any defining field and the id changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ptft.core.ids import content_hash
from ptft.study.checkpoints import CheckpointRef
from ptft.study.spec import ExperimentSpec

# Bump when the meaning of an id's fields changes, so old results are never mistaken for new ones.
PLAN_VERSION = 1


def _template_version(dataset: str, fmt: str, mode: str) -> str:
    from ptft import tasks

    return tasks.template_version(dataset, fmt, mode)


@dataclass(frozen=True)
class Cell:
    cell_id: str
    checkpoint: CheckpointRef
    train_dataset: str
    train_format: str
    epochs: int
    lrs: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["checkpoint"] = self.checkpoint.label
        out["checkpoint_step"] = self.checkpoint.step
        out["lrs"] = list(self.lrs)
        return out


@dataclass(frozen=True)
class Trial:
    trial_id: str
    cell_id: str
    lr: float
    checkpoint: str
    train_dataset: str
    train_format: str
    epochs: int

    @property
    def name(self) -> str:
        """Readable, unique name for Tune trials, folders and W&B runs."""
        return f"{self.train_dataset}-{self.train_format}-ckpt{self.checkpoint}-lr{self.lr:g}-{self.trial_id}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"name": self.name}


@dataclass(frozen=True)
class EvalJob:
    job_id: str
    model: str  # "base:<checkpoint>", "winner:<cell_id>" or "trial:<trial_id>"
    model_kind: Literal["base", "finetuned"]
    checkpoint: str
    cell_id: str | None
    trial_id: str | None
    eval_dataset: str
    eval_format: str
    shots: int
    mode: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    spec: ExperimentSpec
    cells: list[Cell]
    trials: list[Trial]
    eval_jobs: list[EvalJob]
    skipped_eval_pairs: list[tuple[str, str]] = field(default_factory=list)

    def trials_of(self, cell_id: str) -> list[Trial]:
        return [t for t in self.trials if t.cell_id == cell_id]

    def eval_models(self) -> dict[str, list[EvalJob]]:
        """Eval jobs grouped by model: each model is loaded once for all its jobs."""
        grouped: dict[str, list[EvalJob]] = {}
        for job in self.eval_jobs:
            grouped.setdefault(job.model, []).append(job)
        return grouped


def build_plan(spec: ExperimentSpec) -> Plan:
    """Expand a validated spec into cells, trials and eval jobs."""
    train, evals = spec.train, spec.eval
    train_fields = train.train_config().model_dump(exclude={"epochs", "seed", "max_steps", "log_every",
                                                            "checkpoint_every"})
    cells: list[Cell] = []
    trials: list[Trial] = []
    for ref in spec.model.checkpoint_refs():
        for entry in train.datasets:
            epochs = train.epochs_for(entry)
            lrs = tuple(train.lrs_for(entry))
            for fmt in train.formats_for(entry):
                cell_id = content_hash({
                    "v": PLAN_VERSION, "model": spec.model.id, "checkpoint": ref.identity(),
                    "dataset": entry.name, "format": fmt, "data_mode": train.mode,
                    "data_source": spec.data.source, "epochs": epochs, "seed": train.seed,
                    "template": _template_version(entry.name, fmt, train.mode),
                })
                cells.append(Cell(cell_id, ref, entry.name, fmt, epochs, lrs))
                for lr in lrs:
                    trial_id = content_hash({"v": PLAN_VERSION, "cell": cell_id, "lr": lr,
                                             "hparams": train_fields, "max_steps": train.max_steps})
                    trials.append(Trial(trial_id, cell_id, lr, ref.label, entry.name, fmt, epochs))

    pairs, skipped = evals.combinations()
    settings = evals.eval_config().model_dump(exclude={"batch_size"})  # batch size never changes scores
    models: list[tuple[str, dict[str, Any], str, str, str | None, str | None]] = []
    if evals.base:
        for ref in spec.model.checkpoint_refs():
            ident = {"model": spec.model.id, "checkpoint": ref.identity()}
            models.append((f"base:{ref.label}", ident, "base", ref.label, None, None))
    for cell in cells:
        cell_trials = [t for t in trials if t.cell_id == cell.cell_id]
        if evals.models == "winners":
            ident = {"cell": cell.cell_id, "select": "min_val_loss",
                     "trials": sorted(t.trial_id for t in cell_trials)}
            models.append((f"winner:{cell.cell_id}", ident, "finetuned", cell.checkpoint.label,
                           cell.cell_id, None))
        else:
            for t in cell_trials:
                models.append((f"trial:{t.trial_id}", {"trial": t.trial_id}, "finetuned",
                               cell.checkpoint.label, cell.cell_id, t.trial_id))

    jobs: list[EvalJob] = []
    for model, ident, kind, checkpoint, cell_id, trial_id in models:
        for dataset, fmt in pairs:
            template = _template_version(dataset, fmt, evals.mode)
            for shots in evals.shots:
                job_id = content_hash({"v": PLAN_VERSION, "model": ident, "dataset": dataset, "format": fmt,
                                       "shots": shots, "settings": settings, "data_source": spec.data.source,
                                       "template": template})
                jobs.append(EvalJob(job_id, model, kind, checkpoint, cell_id, trial_id, dataset, fmt,
                                    shots, evals.mode))
    return Plan(spec, cells, trials, jobs, skipped)
