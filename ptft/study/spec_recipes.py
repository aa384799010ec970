"""The spec's `recipes:`: multi-stage training, each stage a kind with its data and settings
(docs/recipes.md); rejection sampling's reward (docs/rejection_sampling.md)."""

from __future__ import annotations

import difflib
import os
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from evals.reward_model import RewardModel, RewardModelChoice, local_files_digest
from ptft.study.spec_fields import STRICT, LearningRates, check_formats, check_lr_list, lr_values
from ptft.study.spec_train import MethodSpec, TrainDataset, TrainSpec
from trainers.config import TrainConfig

STAGE_KINDS = ("sft", "continual_pt", "dpo", "rejection_sampling")
# The TrainConfig fields a stage may set for itself (the rest come from the train: section).
STAGE_TRAIN_FIELDS = ("epochs", "max_steps", "warmup_ratio", "max_length", "batch_size", "grad_accum", "packing",
                      "val_size")


class ReplaySpec(BaseModel):
    """Continual pre-training: mix in documents of an older corpus (docs/continual_pt.md)."""

    model_config = STRICT

    dataset: str = Field(description="The replayed (older) corpus.")
    ratio: float = Field(gt=0.0, lt=1.0, description="Fraction of training documents drawn from it.")


class RewardModelSpec(RewardModelChoice):
    """A rejection_sampling stage's reward model (docs/rejection_sampling.md): a sequence classifier with
    one output that scores (prompt, reply), by hub id or local folder, and the batch it is scored in."""

    batch_size: int = Field(8, ge=1, description="Replies scored per forward pass.")

    def reward_model(self, base_dir: str) -> Any:
        """The `evals.reward_model.RewardModel`: a local folder by absolute path, with its files' digest."""
        path = os.path.expanduser(self.model)
        path = path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))
        local = os.path.isdir(path) or self.model.startswith((".", "/", "~"))
        fields = self.model_dump(exclude={"batch_size"})
        if local:
            if self.revision is not None:
                raise ValueError(f"revision: {self.model!r} is a local folder; revision is for hub ids")
            fields |= {"model": path, "files_digest": local_files_digest(path) if os.path.isdir(path) else None}
        return RewardModel(**fields)


# A reward is a metric's name or a reward model's mapping; the tags (dropped from error paths by
# spec_errors) let an error in the mapping name its own field, not every union member.
_Reward = Annotated[
    Annotated[str, Tag("tagged-metric")] | Annotated[RewardModelSpec, Tag("tagged-reward-model")],
    Discriminator(lambda v: "tagged-metric" if isinstance(v, str) else "tagged-reward-model")]


def _default_reward(task_type: str) -> str:
    return "label" if task_type in ("classification", "multiple_choice") else "rougeL"


class StageSpec(BaseModel):
    """One stage of a recipe (docs/recipes.md): a kind of training with its own data, lrs, method and
    TrainConfig overrides; its input is the model the stage before produced (its lr search's winner)."""

    model_config = STRICT

    kind: Literal["sft", "continual_pt", "dpo", "rejection_sampling"] = Field(
        description="sft | continual_pt | dpo | rejection_sampling.")
    dataset: str | None = Field(None, description="continual_pt: a corpus; dpo: a preference set; sft, "
                                                  "rejection_sampling: one task.")
    datasets: list[TrainDataset] | None = Field(None, min_length=1, description="sft: tasks, as train.datasets.")
    formats: list[str] | None = Field(None, min_length=1, description="sft: prompt formats (default: train.formats).")
    learning_rates: LearningRates | None = None
    method: MethodSpec | None = Field(None, description="The stage's method (default full); LoRA merges before the next stage.")
    replay: ReplaySpec | None = None
    beta: float | None = Field(None, gt=0.0, description="dpo: the KL strength beta (default 0.1).")
    epochs: int | None = Field(None, ge=1)
    max_steps: int | None = Field(None, ge=1)
    warmup_ratio: float | None = Field(None, ge=0.0, lt=1.0)
    max_length: int | None = Field(None, ge=8)
    batch_size: int | None = Field(None, ge=1)
    grad_accum: int | None = Field(None, ge=1)
    packing: bool | None = None
    val_size: int | None = Field(None, ge=0)
    # rejection_sampling (docs/rejection_sampling.md): sample N completions per prompt of `dataset` from the
    # stage's input model, keep the best per prompt by `reward`, then SFT on the kept set.
    format: str | None = Field(None, description="rejection_sampling: the prompts' format (default: default).")
    samples: int | None = Field(None, ge=1, description="rejection_sampling: completions per prompt, N (default 4).")
    temperature: float | None = Field(None, gt=0.0, description="rejection_sampling: sampling temperature (default 1).")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="rejection_sampling: nucleus mass (default 1).")
    seed: int | None = Field(None, description="rejection_sampling: seed of the draws (default 0).")
    reward: _Reward | None = Field(None, description=(
        "rejection_sampling: rougeL | exact_match | f1 | label (default: rougeL for a generation or chat task, "
        "label for classification and multiple choice), or a reward model {model: <hub id or folder>, ...}."))
    threshold: float | None = Field(None, description="rejection_sampling: keep a prompt's best only if it scores "
                                                      "at least this.")
    max_new_tokens: int | None = Field(None, ge=1, description="rejection_sampling: tokens per completion (default 64).")
    prompts: int | None = Field(None, ge=1, description="rejection_sampling: sample only this many prompts (default all).")

    @field_validator("reward", mode="before")
    @classmethod
    def _reward(cls, value: Any) -> Any:
        from evals.rejection import REWARDS

        if isinstance(value, dict):
            return value  # a reward model: RewardModelSpec checks its fields
        if value is not None and value not in REWARDS:
            hint = difflib.get_close_matches(str(value), REWARDS, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"unknown reward metric {value!r}{did_you_mean}; known: {', '.join(REWARDS)}")
        return value

    @field_validator("learning_rates", mode="before")
    @classmethod
    def _lrs(cls, value: Any) -> Any:
        return check_lr_list(value)

    @model_validator(mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("kind"), str) and value["kind"] not in STAGE_KINDS:
            hint = difflib.get_close_matches(value["kind"], STAGE_KINDS, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"unknown stage kind {value['kind']!r}{did_you_mean}; allowed: {list(STAGE_KINDS)}")
        return value

    @model_validator(mode="after")
    def _data_fits_kind(self) -> StageSpec:
        sampling = [k for k in _SAMPLING_FIELDS if getattr(self, k) is not None]
        if self.kind == "rejection_sampling":
            return self._rejection_sampling_fits()
        if sampling:
            raise ValueError(f"{sampling[0]} is a rejection_sampling setting")
        if self.kind == "sft":
            if self.dataset is None and not self.datasets:
                raise ValueError("an sft stage needs datasets: (tasks)")
            if self.dataset is not None and self.datasets:
                raise ValueError("give dataset or datasets, not both")
            if self.replay is not None or self.beta is not None:
                raise ValueError(f"replay and beta are not sft settings ({'replay' if self.replay else 'beta'})")
            if self.formats is not None:
                check_formats(self.formats, where="formats")
            return self
        if self.dataset is None:
            raise ValueError(f"a {self.kind} stage needs dataset: (a {_DATA_KIND[self.kind]})")
        if self.datasets is not None or self.formats is not None:
            raise ValueError(f"a {self.kind} stage reads one {_DATA_KIND[self.kind]} (dataset:), not datasets/formats")
        if self.kind == "continual_pt" and self.beta is not None:
            raise ValueError("beta is a dpo setting")
        if self.kind == "dpo" and self.replay is not None:
            raise ValueError("replay is a continual_pt setting")
        _check_dataset_kind(self.dataset, self.kind, "dataset")
        if self.replay is not None:
            _check_dataset_kind(self.replay.dataset, "continual_pt", "replay.dataset")
        if self.method is not None and self.method.method.prefix_length:
            raise ValueError(f"method: {self.method.label} is sft-only in a recipe (a prompt cannot feed a {self.kind} stage)")
        return self

    def _rejection_sampling_fits(self) -> StageSpec:
        from ptft import tasks

        if self.dataset is None:
            raise ValueError("a rejection_sampling stage needs dataset: (a task whose prompts are sampled)")
        if self.datasets is not None or self.formats is not None:
            raise ValueError("a rejection_sampling stage samples one task (dataset:) in one format (format:), "
                             "not datasets/formats")
        if self.replay is not None or self.beta is not None:
            raise ValueError(f"{'replay' if self.replay else 'beta'} is not a rejection_sampling setting")
        _check_dataset_kind(self.dataset, "sft", "dataset")
        task = tasks.get_task(self.dataset)
        fmt = self.format or "default"
        check_formats([fmt], where="format")
        if fmt not in task.formats:
            raise ValueError(f"format: {self.dataset!r} has no {fmt!r} format (it has {', '.join(task.formats)})")
        from evals.rejection import REWARDS_FOR

        if task.task_type not in REWARDS_FOR:
            raise ValueError(f"dataset: {self.dataset!r} is a {task.task_type} task; rejection sampling samples "
                             f"{', '.join(REWARDS_FOR)} tasks")
        reward = self.reward or _default_reward(task.task_type)
        if isinstance(reward, str) and reward not in REWARDS_FOR[task.task_type]:
            raise ValueError(f"reward: {reward!r} scores a label or a choice; {self.dataset!r} is a "
                             f"{task.task_type} task: use {', '.join(REWARDS_FOR[task.task_type])} or a reward model")
        if self.method is not None and self.method.method.prefix_length:
            raise ValueError(f"method: {self.method.label} cannot sample (a prompt method trains no weights "
                             "to merge); use full or lora")
        return self

    def rejection_config(self, base_dir: str = ".") -> Any:
        """A rejection_sampling stage's `evals.rejection.RejectionConfig` (defaults filled in; a reward
        model's local folder resolved against `base_dir` and entered by its files)."""
        from evals.rejection import RejectionConfig
        from ptft import tasks

        assert self.kind == "rejection_sampling" and self.dataset is not None
        given = {k: getattr(self, k) for k in ("samples", "temperature", "top_p", "seed", "threshold",
                                                "max_new_tokens", "prompts") if getattr(self, k) is not None}
        reward = self.reward or _default_reward(tasks.get_task(self.dataset).task_type)
        if isinstance(reward, RewardModelSpec):
            given["reward_batch_size"] = reward.batch_size
            reward = reward.reward_model(base_dir)
        return RejectionConfig(dataset=self.dataset, fmt=self.format or "default", reward=reward, **given)

    def sft_datasets(self) -> list[TrainDataset]:
        if self.datasets:
            return list(self.datasets)
        return [TrainDataset(name=self.dataset)] if self.dataset else []

    def train_configs(self, train: TrainSpec, entry: TrainDataset) -> tuple[TrainConfig, TrainConfig]:
        """(this stage's TrainConfig on `entry`, the train: section's): the section's with the fields the
        stage sets for itself (STAGE_TRAIN_FIELDS); the plan compares the two."""
        plain = train.train_config(epochs=self.epochs or train.epochs_for(entry))
        overrides = {k: getattr(self, k) for k in STAGE_TRAIN_FIELDS
                     if k != "epochs" and getattr(self, k) is not None}
        return (plain.model_copy(update=overrides) if overrides else plain), plain

    def lrs_for(self, train: TrainSpec, entry: TrainDataset, method: MethodSpec) -> list[float]:
        """The stage's own lrs, else what the train: section gives the dataset and method."""
        return lr_values(self.learning_rates) if self.learning_rates is not None else train.lrs_for(entry, method)


_DATA_KIND = {"sft": "task", "continual_pt": "corpus", "dpo": "preference set", "rejection_sampling": "task"}
_SAMPLING_FIELDS = ("format", "samples", "temperature", "top_p", "seed", "reward", "threshold", "max_new_tokens",
                    "prompts")


def _check_dataset_kind(name: str, kind: str, where: str) -> None:
    """The stage's data must be the kind it trains on: a corpus for continual_pt, a preference set for
    dpo; a task, corpus or preference set in the wrong stage is named as what it is."""
    from ptft import tasks

    found = {"continual_pt": _registered(tasks, "get_corpus", name), "dpo": _registered(tasks, "get_preference_set", name),
             "sft": _registered(tasks, "get_task", name)}
    if found[kind]:
        return
    other = next((k for k, ok in found.items() if ok), None)
    if other is not None:
        raise ValueError(f"{where}: {name!r} is a {_DATA_KIND[other]}, not a {_DATA_KIND[kind]}; use it in a "
                         f"{other} stage")
    raise ValueError(f"{where}: unknown {_DATA_KIND[kind]} {name!r}")


def _registered(tasks_module: Any, getter: str, name: str) -> bool:
    get = getattr(tasks_module, getter, None)
    if get is None:
        return False
    try:
        get(name)
        return True
    except (KeyError, ValueError):
        return False


def check_recipes(recipes: dict[str, list[StageSpec]]) -> dict[str, list[StageSpec]]:
    for name, stages in recipes.items():
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
            raise ValueError(f"{name}: a recipe name is letters, digits and _.- only")
        if not stages:
            raise ValueError(f"{name}: a recipe needs at least one stage")
        for i, stage in enumerate(stages[:-1]):
            if stage.method is not None and stage.method.method.prefix_length:
                raise ValueError(f"{name}[{i}].method: {stage.method.label} cannot feed a later stage (a prompt is "
                                 "not weights); use it in the last stage")
    return recipes


