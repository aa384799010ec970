"""The spec's `train:` section: datasets, formats, learning rates and methods over `TrainConfig`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

from ptft.study.spec_fields import (
    STRICT,
    LearningRates,
    check_formats,
    check_lr_list,
    lacking_formats,
    lr_values,
    no_duplicate_names,
    registered_task,
)
from trainers.config import TrainConfig
from trainers.methods import FullMethod, Method


class MethodSpec(BaseModel):
    """One entry of `train.methods`: a method by name (`lora`) or with its parameters
    (`{name: lora, r: 16, learning_rates: [1e-4, 3e-4]}`); its own learning rates, if given, replace the
    dataset's and the section's (LoRA wants larger ones than full fine-tuning). docs/methods.md §1."""

    model_config = STRICT

    method: Method
    learning_rates: LearningRates | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict) and "method" not in value:
            fields = dict(value)
            lrs = fields.pop("learning_rates", None)
            return {"method": fields, "learning_rates": check_lr_list(lrs)}
        return value

    @property
    def label(self) -> str:
        return self.method.label


class DatasetEntry(BaseModel):
    """A dataset given by name alone (`mnli`) or as a mapping with per-dataset settings."""

    model_config = STRICT

    name: str
    formats: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            cls._check_task(registered_task(value["name"]))  # raises "unknown dataset ... (did you mean ...)"
        return value

    @classmethod
    def _check_task(cls, task) -> None:
        """What this side of the study requires of the dataset (nothing beyond existing, by default)."""


class TrainDataset(DatasetEntry):
    """A training dataset with optional per-dataset overrides (the study: xsum at 2e-7, tulu 5 epochs)."""

    learning_rates: LearningRates | None = None
    epochs: int | None = Field(None, ge=1)
    methods: list[str] | None = Field(
        None, min_length=1, description="Labels of train.methods to use on this dataset (default: all).")

    @classmethod
    def _check_task(cls, task) -> None:
        if task.train_split is None:
            raise ValueError(f"dataset {task.name!r} is eval-only (no training split)")

    @field_validator("learning_rates", mode="before")
    @classmethod
    def _lrs(cls, value: Any) -> Any:
        return check_lr_list(value)


class TrainSpec(TrainConfig):
    """The `train:` section: what to fine-tune on, the lr search space, and the `TrainConfig` fields."""

    datasets: list[TrainDataset] = Field(
        default_factory=list, description="Tasks to fine-tune on (may be empty when recipes: train instead).")
    formats: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    mode: Literal["faithful", "fixed"] = "fixed"
    learning_rates: LearningRates = Field(default_factory=lambda: [2e-6])
    methods: list[MethodSpec] = Field(
        default_factory=lambda: [MethodSpec(method=FullMethod())], min_length=1,
        description="Fine-tuning methods, each a grid axis: full, lora, prompt_tuning, p_tuning (docs/methods.md).")
    asha: bool = Field(False, description="Stop weak lrs early on validation loss (ASHA).")

    @field_validator("learning_rates", mode="before")
    @classmethod
    def _lrs(cls, value: Any) -> Any:
        return check_lr_list(value)

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        return check_formats(value)

    @model_validator(mode="after")
    def _datasets_support_formats(self) -> TrainSpec:
        no_duplicate_names(self.datasets)
        for i, entry in enumerate(self.datasets):
            wanted = entry.formats if entry.formats is not None else self.formats
            if entry.formats is not None:
                check_formats(entry.formats, where=f"datasets[{i}].formats")
            lacking = lacking_formats(entry.name, wanted, self.mode)
            if lacking:
                raise ValueError(f"datasets[{i}]: {lacking}; set datasets[{i}].formats")
        self._check_methods()
        return self

    def _check_methods(self) -> None:
        labels = [m.label for m in self.methods]
        for i, method in enumerate(self.methods):
            if labels.count(method.label) > 1:
                raise ValueError(f"methods[{i}]: two methods are labelled {method.label!r}; give one a `label:`")
            if method.method.prefix_length >= self.max_length:
                raise ValueError(f"methods[{i}]: {method.method.prefix_length} virtual tokens leave no room in "
                                 f"max_length {self.max_length}")
        for i, entry in enumerate(self.datasets):
            unknown = [label for label in entry.methods or [] if label not in labels]
            if unknown:
                raise ValueError(f"datasets[{i}].methods: {unknown} are not labels of train.methods {labels}")

    def methods_for(self, entry: TrainDataset) -> list[MethodSpec]:
        return [m for m in self.methods if entry.methods is None or m.label in entry.methods]

    def train_config(self, epochs: int | None = None) -> TrainConfig:
        fields = {name: getattr(self, name) for name in TrainConfig.model_fields}
        if epochs is not None:
            fields["epochs"] = epochs
        return TrainConfig(**fields)

    def formats_for(self, entry: TrainDataset) -> list[str]:
        return list(entry.formats if entry.formats is not None else self.formats)

    def lrs_for(self, entry: TrainDataset, method: MethodSpec | None = None) -> list[float]:
        """The method's own lrs, else the dataset's, else the section's."""
        for lrs in (method.learning_rates if method else None, entry.learning_rates):
            if lrs is not None:
                return lr_values(lrs)
        return lr_values(self.learning_rates)

    def epochs_for(self, entry: TrainDataset) -> int:
        return entry.epochs if entry.epochs is not None else self.epochs


