"""The results contract: one record per (model, eval dataset, eval format, shots, mode).

The analysis reads these records and nothing else, so a table from another source (the study's
published CSV, say) converted into records is analysed by exactly the same code.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ptft.core import storage

ModelKind = Literal["base", "finetuned"]

# Where a record was produced. Records from different harnesses are never merged, even when they
# describe the same model and dataset (the study's MC table came from a different harness).
SOURCES = ("ptft", "study", "study_official", "lm_eval")


@dataclass(frozen=True, kw_only=True)
class ModelIdentity:
    """Which model a result belongs to: declared once, embedded in `ModelRef` and `ResultRecord`."""

    model_kind: ModelKind = "base"
    base_model: str  # hub id or local path of the pre-trained model family
    checkpoint: str  # checkpoint label: "1000", "main", a revision, or a local dir name
    checkpoint_step: int | None = None  # pre-training step (for curves); None when unknown (e.g. "main")
    # Billions of tokens the checkpoint was pre-trained on, where its family says (the revision's name, or a
    # fixed batch): the curves' axis two families share. Not in key(): it describes the checkpoint, which
    # base_model and checkpoint already name.
    checkpoint_tokens: float | None = field(default=None, metadata={
        "description": "Billions of pre-training tokens seen by the checkpoint recorded (for curves)."})
    train_dataset: str | None = None  # fine-tuned models only
    train_format: str | None = None
    lr: float | None = None
    trial_id: str | None = None
    epochs: int | None = None
    method: str = "full"  # fine-tuning method label ("full", "lora-r16", "prompt-20"); "full" for base models
    # Recipes (docs/recipes.md): what the model's last stage optimised ("sft", "continual_pt", "dpo") and the
    # stages before it ("continual_pt:news>sft:mnli/default"); None for a model trained in one stage.
    objective: str = "sft"
    prior_stages: str | None = None

    def __post_init__(self) -> None:
        if self.model_kind not in ("base", "finetuned"):
            raise ValueError(f"model_kind: {self.model_kind!r} is not 'base' or 'finetuned'")
        if self.model_kind == "finetuned" and not self.train_dataset:
            raise ValueError(f"fine-tuned model {self.base_model!r}@{self.checkpoint} needs train_dataset")
        if self.model_kind == "base" and (self.train_dataset or self.lr is not None):
            raise ValueError(f"base model {self.base_model!r}@{self.checkpoint} has no train_dataset or lr")

    def identity(self) -> ModelIdentity:
        """Just the identity (of a record, say), as its own value."""
        return ModelIdentity(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ModelIdentity)})


@dataclass(frozen=True, kw_only=True)
class ResultRecord(ModelIdentity):
    """One evaluated (model, eval dataset, eval format, shots, mode); the model's identity fields first."""

    # --- what was evaluated ---
    eval_dataset: str  # registry name (the study's short names)
    eval_format: str  # "default" | "instruct" | "io"
    shots: int
    metric: str  # "accuracy" | "rougeL" | "acc" | "acc_norm"
    value: float  # the metric's mean over examples
    std: float | None  # bootstrap standard error (None where the source has none)
    n: int | None
    # --- provenance ---
    mode: str = "fixed"  # "faithful" | "fixed"
    source: str = "ptft"
    ci_low: float | None = None
    ci_high: float | None = None
    predictions: str | None = None  # path of the per-example records
    job_id: str | None = None
    template_checksum: str | None = None
    engine_version: str | None = None
    bootstrap_seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source not in SOURCES:
            raise ValueError(f"source: {self.source!r} is not one of {SOURCES}")
        if not isinstance(self.value, (int, float)) or math.isnan(self.value):
            raise ValueError(f"value: {self.value!r} is not a number")

    # The fields that say which cell of the analysis a record belongs to. Two records with the same
    # key are duplicates; the analysis refuses them instead of guessing which one is right.
    def key(self) -> tuple:
        return (
            self.source, self.model_kind, self.base_model, self.checkpoint, self.train_dataset,
            self.train_format, self.method, self.objective, self.prior_stages, self.lr, self.eval_dataset,
            self.eval_format, self.shots, self.mode,
            self.metric,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> ResultRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(row) - names
        if unknown:
            raise ValueError(f"unknown result fields: {sorted(unknown)}")
        return cls(**row)


def stage_name(objective: str, train_dataset: str, train_format: str, method: str) -> str:
    """One training stage as a recipe's lineage names it: `continual_pt:news`, `sft:mnli/default`,
    `sft:mnli/default-lora-r16` (the plan writes `prior_stages` with it; the analysis reads it back)."""
    fmt = f"/{train_format}" if objective == "sft" else ""
    return f"{objective}:{train_dataset}{fmt}" + ("" if method == "full" else f"-{method}")


def lineage(identity: ModelIdentity) -> str | None:
    """Every stage that produced a fine-tuned model, in order (None for a base model)."""
    if identity.model_kind == "base" or identity.train_dataset is None:
        return None
    own = stage_name(identity.objective, identity.train_dataset, identity.train_format or "default",
                     identity.method)
    return f"{identity.prior_stages}>{own}" if identity.prior_stages else own


def write_records(path: str, records: Iterable[ResultRecord]) -> None:
    """Write records as JSONL, atomically."""
    storage.atomic_write_jsonl(path, (r.to_dict() for r in records))


def read_records(path: str) -> list[ResultRecord]:
    return [ResultRecord.from_dict(row) for row in storage.read_jsonl(path)]


def record_line(record: ResultRecord) -> str:
    return json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False)
