"""The spec's `eval:` section: datasets, formats, shots and the harness over `EvalConfig`."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evals.config import EvalConfig
from evals.harness import HarnessConfig, check_tasks, require_lm_eval
from ptft.study.spec_fields import check_formats, no_duplicate_names, registered_task, supported_formats
from ptft.study.spec_train import DatasetEntry


class EvalDataset(DatasetEntry):
    """An eval dataset, optionally with its own formats."""

    @classmethod
    def _check_task(cls, task) -> None:
        if not task.eval_split:
            from ptft import tasks

            own = [n for n in tasks.list_tasks() if n.startswith(f"{task.name}_") and tasks.get_task(n).eval_split]
            hint = f"; evaluate on {', '.join(own)}" if own else ""
            raise ValueError(f"dataset {task.name!r} is training-only (no eval split){hint}")


class EvalSpec(EvalConfig):
    """The `eval:` section: datasets x formats x shots, which models, and the `EvalConfig` fields."""

    datasets: list[EvalDataset] = Field(min_length=1)
    formats: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    shots: list[int] = Field(default_factory=lambda: [4], min_length=1)
    models: Literal["winners", "all"] = Field("winners", description="Evaluate each cell's best lr, or every trial.")
    base: bool = Field(True, description="Evaluate every base checkpoint (once per grid).")
    after: Literal["every_stage", "last"] = Field(
        "every_stage", description="Recipes: evaluate the model after every stage, or after the last only.")
    # lm-evaluation-harness tasks run on every evaluated model beside the datasets above (docs/harness.md).
    # The include path comes first: the task names are checked against it (validation runs in field order).
    harness_include_path: str | None = Field(None, description=(
        "A folder of your own lm-eval task YAMLs; relative to the working directory, as lm-eval reads it."))
    harness_tasks: list[str] = Field(default_factory=list, validate_default=True, description=(
        "lm-eval task, group or tag names (mmlu, hellaswag, ...) run on every evaluated model; needs "
        "pip install 'ptft[harness]'."))
    harness_shots: int | None = Field(None, ge=0, description=(
        "lm-eval's num_fewshot for every harness task; None: each task's own default."))
    harness_limit: int | None = Field(None, ge=1, description="Score only the first N documents of each harness task.")

    @field_validator("harness_include_path")
    @classmethod
    def _include_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # Absolute from here on: the workers that run the tasks need not share the driver's directory.
        path = os.path.abspath(os.path.expanduser(value))
        if not os.path.isdir(path):
            raise ValueError(f"{value!r} is not a folder" + (f" ({path})" if path != value else ""))
        return path

    @field_validator("harness_tasks")
    @classmethod
    def _harness_tasks_exist(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if not value:
            if info.data.get("harness_include_path"):
                raise ValueError("is empty, but harness_include_path is set; name the tasks to run")
            return value
        require_lm_eval()  # the install line, before any name is looked up
        for i, name in enumerate(value):
            if value.index(name) != i:
                raise ValueError(f"[{i}]: {name!r} is listed twice")
        if "harness_include_path" in info.data:  # else its own error is reported
            check_tasks(value, info.data["harness_include_path"], field="")  # close matches, from lm-eval
        return value

    @field_validator("harness_shots", "harness_limit")
    @classmethod
    def _harness_setting_needs_tasks(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("harness_tasks") == []:
            raise ValueError(f"is {value}, but eval.harness_tasks is empty; name the tasks to run")
        return value

    @field_validator("shots")
    @classmethod
    def _shots(cls, value: list[int]) -> list[int]:
        for k in value:
            if k < 0:
                raise ValueError(f"shot count {k} is negative")
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate shot counts in {value}")
        return value

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        return check_formats(value)

    @model_validator(mode="after")
    def _formats_exist_somewhere(self) -> EvalSpec:
        no_duplicate_names(self.datasets)
        for i, entry in enumerate(self.datasets):
            if entry.formats is not None:
                check_formats(entry.formats, where=f"datasets[{i}].formats")
                task = registered_task(entry.name)
                missing = [f for f in entry.formats if not task.supports(f, self.mode)]
                if missing:
                    raise ValueError(f"datasets[{i}]: dataset {entry.name!r} has no format(s) {missing} "
                                     f"in {self.mode} mode (it has {supported_formats(task, self.mode)})")
        _shots_fit_pools(self.shots, [d.name for d in self.datasets], self.mode)
        for fmt in self.formats:
            if not any(registered_task(d.name).supports(fmt, self.mode) for d in self.datasets if d.formats is None):
                if all(d.formats is not None for d in self.datasets):
                    break
                raise ValueError(f"formats: no eval dataset supports format {fmt!r}")
        return self

    def eval_config(self) -> EvalConfig:
        return EvalConfig(**{name: getattr(self, name) for name in EvalConfig.model_fields})

    def harness_config(self) -> HarnessConfig | None:
        """What `evals.harness.run_harness` runs on each model (None: no harness tasks)."""
        if not self.harness_tasks:
            return None
        return HarnessConfig(tasks=tuple(self.harness_tasks), num_fewshot=self.harness_shots,
                             limit=self.harness_limit, include_path=self.harness_include_path,
                             batch_size=self.batch_size, max_length=self.max_length, precision=self.precision,
                             device=self.device, fewshot_seed=self.fewshot_seed,
                             bootstrap_iters=self.bootstrap_resamples)

    def combinations(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(dataset, format) pairs to evaluate, and the pairs skipped because the dataset lacks the format.

        A dataset with its own `formats` uses exactly those; the others use `eval.formats` where they
        support it (the study's input-output format exists for six datasets only).
        """
        chosen, skipped = [], []
        for entry in self.datasets:
            if entry.formats is not None:
                chosen += [(entry.name, f) for f in entry.formats]
                continue
            task = registered_task(entry.name)
            for fmt in self.formats:
                (chosen if task.supports(fmt, self.mode) else skipped).append((entry.name, fmt))
        return chosen, skipped


def _shots_fit_pools(shots: list[int], datasets: list[str], mode: str) -> None:
    """Every shot count fits every eval dataset's few-shot pool, at the hub's split sizes (the registry's).

    A local data source can hold fewer rows; the preflight (`ptft.study.preflight`) counts those.
    """
    from ptft.tasks.sets import shot_pool

    for j, k in enumerate(shots):
        for name in datasets:
            pool, split = shot_pool(name, mode)
            size = pool.split_sizes.get(split)
            if size is not None and k > size:
                raise ValueError(f"shots[{j}]: {k} shots, but the few-shot pool of eval dataset {name!r} "
                                 f"({pool.name}/{split}) has only {size} rows; use at most {size}")


