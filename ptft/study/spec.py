"""The experiment spec: one YAML file -> typed, validated config objects.

Each layer owns its part (`TrainConfig` in trainers/, `EvalConfig` in evals/, the dataset registry in
tasks/); this module composes them into the grid and checks everything that can be checked before a
GPU is asked for. Unknown keys are errors. Every error names the YAML field, the bad value and what is
allowed, e.g. ``train.datasets[2]: unknown dataset 'mlni' (did you mean 'mnli'?)``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Tag,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evals.config import EvalConfig
from evals.harness import HarnessConfig, check_tasks, require_lm_eval
from ptft.core.layout import base_model_key
from ptft.core.yaml_files import YamlError, parse_yaml, read_yaml
from ptft.study.checkpoints import (
    CheckpointRef,
    Family,
    RevisionResolver,
    family_for,
    parse_checkpoint,
    pattern_family,
)
from ptft.study.spec_errors import SpecError, explain
from ptft.tasks.corpora import CorpusSpec
from ptft.tasks.declared import TaskDeclaration
from trainers.config import TrainConfig
from trainers.methods import FullMethod, Method

_STRICT = ConfigDict(extra="forbid", frozen=True)


def _task(name: str):
    """Look a dataset up in the registry; the registry's error carries the "did you mean"."""
    from ptft import tasks

    return tasks.get_task(name)


def _formats() -> tuple[str, ...]:
    from ptft import tasks

    return tuple(tasks.FORMATS)


# ------------------------------------------------------------------------------------------ model
class ModelSpec(BaseModel):
    model_config = _STRICT

    id: str = Field(description="Hub id (allenai/OLMo-1B-hf) or a local model directory.")
    name: str | None = Field(None, min_length=1, description=(
        "The model family's name in results and reports (base_model); default: id. Give one when id is a "
        "local folder of one checkpoint, so rows of every checkpoint do not read as that one."))
    # The family fields come before `checkpoints`: pydantic validates in this order, so the checkpoints'
    # validator can check each stage and ingredient against the family (docs/families.md).
    checkpoint_family: str | None = Field(None, description=(
        "How the hub names its checkpoints: olmo, olmo2, olmo3, pythia, smollm2; default: detected from id "
        "(docs/families.md)."))
    revision_pattern: str | None = Field(None, description=(
        "Any other naming: a format string with {step} ('ckpt_{step:03d}') or a regex with (?P<step>...)."))
    tokens_per_step: int | None = Field(None, ge=1, description=(
        "Tokens per pre-training step (a fixed batch): tokens seen = step x this, for curves."))
    checkpoints: list[Any] = Field(
        default_factory=lambda: ["main"],
        description="Steps (1000), 'main', explicit revisions, local dirs, or {path|revision|step, name}.",
    )
    num_params: int | None = Field(None, ge=1, description="Parameter count for the cost estimate.")

    @field_validator("checkpoint_family")
    @classmethod
    def _known_family(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            family_for(info.data.get("id", ""), declared=value)  # ValueError: unknown, with what is known
        return value

    @field_validator("revision_pattern")
    @classmethod
    def _pattern(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            if info.data.get("checkpoint_family") is not None:
                raise ValueError("give either checkpoint_family or revision_pattern, not both")
            pattern_family(value)
        return value

    @field_validator("checkpoints")
    @classmethod
    def _checkpoints(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        if not value:
            raise ValueError("needs at least one checkpoint")
        refs = []
        for i, item in enumerate(value):
            try:
                refs.append(parse_checkpoint(item))
            except ValueError as err:
                raise ValueError(f"[{i}]: {err}") from None
        labels = [r.label for r in refs]
        dupes = sorted({label for label in labels if labels.count(label) > 1})
        if dupes:
            raise ValueError(f"duplicate checkpoints {dupes}")
        family_fields = ("id", "checkpoint_family", "revision_pattern", "tokens_per_step")
        if all(key in info.data for key in family_fields):  # a bad family field is reported on its own
            family = family_for(info.data["id"], info.data["checkpoint_family"], info.data["revision_pattern"],
                                info.data["tokens_per_step"])
            for i, ref in enumerate(refs):
                try:
                    family.check_stage(ref.stage, ref.ingredient)
                except ValueError as err:
                    raise ValueError(f"[{i}]: {err}") from None
        return value

    @property
    def family(self) -> str:
        """What results call the pre-trained model (`base_model`)."""
        return self.name or self.id

    def checkpoint_refs(self) -> list[CheckpointRef]:
        return [parse_checkpoint(item) for item in self.checkpoints]

    def checkpoint_naming(self) -> Family:
        """How this model's hub names its checkpoints (the declared family, a pattern, or detected)."""
        return family_for(self.id, self.checkpoint_family, self.revision_pattern, self.tokens_per_step)

    def resolve(self, resolver: RevisionResolver, ref: CheckpointRef, base_dir: str) -> tuple[str, str | None]:
        """(path_or_id, revision) of one of this model's checkpoints, in its own family's naming."""
        return resolver.resolve(self.id, ref, base_dir, family=self.checkpoint_naming())

    def tokens_seen(self, resolver: RevisionResolver, ref: CheckpointRef, revision: str | None) -> float | None:
        """Billions of tokens seen at `ref` where the family says (its revision's name, or a fixed batch)."""
        return resolver.tokens_seen(self.id, ref, revision, family=self.checkpoint_naming())


def qualified_label(model_name: str | None, label: str) -> str:
    """A checkpoint's label made unique across the spec's models: in a spec of one `model:` the label alone
    (today's folder names), in `models:` prefixed with the model's name (two models may share a label)."""
    return label if model_name is None else f"{model_name}-{label}"


# ------------------------------------------------------------------------------- learning rates
class LogUniform(BaseModel):
    """A log-uniform lr range, sampled at plan time with a seed so trial ids stay stable on resume."""

    model_config = _STRICT

    log_uniform: tuple[float, float]
    samples: int = Field(ge=1)
    seed: int = 0

    @field_validator("log_uniform")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (0 < low < high):
            raise ValueError(f"needs 0 < low < high, got [{low}, {high}]")
        return value

    def values(self) -> list[float]:
        import numpy as np

        rng = np.random.default_rng(self.seed)
        logs = rng.uniform(math.log(self.log_uniform[0]), math.log(self.log_uniform[1]), self.samples)
        return sorted(float(f"{math.exp(x):.3g}") for x in logs)


LearningRates = list[float] | LogUniform


def _lr_values(spec: LearningRates) -> list[float]:
    return spec.values() if isinstance(spec, LogUniform) else list(spec)


def _check_lr_list(value: Any) -> Any:
    if isinstance(value, list):
        if not value:
            raise ValueError("needs at least one learning rate")
        for lr in value:
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < lr < 1):
                raise ValueError(f"learning rate {lr!r} is not a number in (0, 1)")
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate learning rates in {value}")
    return value


# -------------------------------------------------------------------------------------- train
class MethodSpec(BaseModel):
    """One entry of `train.methods`: a method by name (`lora`) or with its parameters
    (`{name: lora, r: 16, learning_rates: [1e-4, 3e-4]}`); its own learning rates, if given, replace the
    dataset's and the section's (LoRA wants larger ones than full fine-tuning). docs/methods.md §1."""

    model_config = _STRICT

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
            return {"method": fields, "learning_rates": _check_lr_list(lrs)}
        return value

    @property
    def label(self) -> str:
        return self.method.label


class _DatasetEntry(BaseModel):
    """A dataset given by name alone (`mnli`) or as a mapping with per-dataset settings."""

    model_config = _STRICT

    name: str
    formats: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            cls._check_task(_task(value["name"]))  # raises "unknown dataset ... (did you mean ...)"
        return value

    @classmethod
    def _check_task(cls, task) -> None:
        """What this side of the study requires of the dataset (nothing beyond existing, by default)."""


class TrainDataset(_DatasetEntry):
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
        return _check_lr_list(value)


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
        return _check_lr_list(value)

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        return _check_formats(value)

    @model_validator(mode="after")
    def _datasets_support_formats(self) -> TrainSpec:
        _no_duplicate_names(self.datasets)
        for i, entry in enumerate(self.datasets):
            task = _task(entry.name)
            wanted = entry.formats if entry.formats is not None else self.formats
            if entry.formats is not None:
                _check_formats(entry.formats, where=f"datasets[{i}].formats")
            missing = [f for f in wanted if not task.supports(f, self.mode)]
            if missing:
                raise ValueError(
                    f"datasets[{i}]: dataset {entry.name!r} has no format(s) {missing} in {self.mode} mode "
                    f"(it has {_supported(task, self.mode)}); set datasets[{i}].formats"
                )
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
                return _lr_values(lrs)
        return _lr_values(self.learning_rates)

    def epochs_for(self, entry: TrainDataset) -> int:
        return entry.epochs if entry.epochs is not None else self.epochs


def _no_duplicate_names(entries: list[Any]) -> None:
    names = [entry.name for entry in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"datasets: duplicate datasets {dupes}")


def _supported(task, mode: str) -> list[str]:
    return [f for f in _formats() if task.supports(f, mode)]


def _check_formats(value: list[str], where: str | None = None) -> list[str]:
    allowed = _formats()
    for i, fmt in enumerate(value):
        if fmt not in allowed:
            hint = difflib.get_close_matches(fmt, allowed, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            prefix = f"{where}[{i}]: " if where else f"[{i}]: "
            raise ValueError(f"{prefix}unknown format {fmt!r}{did_you_mean}; allowed: {list(allowed)}")
    if len(set(value)) != len(value):
        raise ValueError(f"duplicate formats in {value}")
    return value


# --------------------------------------------------------------------------------------- eval
class EvalDataset(_DatasetEntry):
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
        return _check_formats(value)

    @model_validator(mode="after")
    def _formats_exist_somewhere(self) -> EvalSpec:
        _no_duplicate_names(self.datasets)
        for i, entry in enumerate(self.datasets):
            if entry.formats is not None:
                _check_formats(entry.formats, where=f"datasets[{i}].formats")
                task = _task(entry.name)
                missing = [f for f in entry.formats if not task.supports(f, self.mode)]
                if missing:
                    raise ValueError(f"datasets[{i}]: dataset {entry.name!r} has no format(s) {missing} "
                                     f"in {self.mode} mode (it has {_supported(task, self.mode)})")
        _shots_fit_pools(self.shots, [d.name for d in self.datasets], self.mode)
        for fmt in self.formats:
            if not any(_task(d.name).supports(fmt, self.mode) for d in self.datasets if d.formats is None):
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
            task = _task(entry.name)
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


# ---------------------------------------------------------------------------------- the rest
class ResourcesSpec(BaseModel):
    model_config = _STRICT

    workers_per_trial: int = Field(1, ge=1, description="Ray Train workers (DeepSpeed ranks) per trial.")
    trial_launch: Literal["auto", "in_process", "torch_trainer"] = Field(
        "auto", description="How a trial starts: 'in_process' trains inside its Tune trainable, whose process "
        "(imports, process group) is reused by the next trial; 'torch_trainer' starts a Ray Train worker group "
        "per trial; 'auto': in_process for one worker per trial, else torch_trainer.")
    gpus_per_worker: float = Field(1.0, ge=0)
    cpus_per_worker: float = Field(4.0, gt=0)
    max_concurrent_trials: int = Field(4, ge=1)
    max_failures: int = Field(2, ge=0, description="Retries of a failed trial (resumes from its checkpoint).")
    eval_gpus_per_worker: float = Field(1.0, ge=0)
    eval_cpus_per_worker: float = Field(4.0, gt=0)
    max_concurrent_evals: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _launch_fits_workers(self) -> ResourcesSpec:
        if self.trial_launch == "in_process" and self.workers_per_trial > 1:
            raise ValueError(f"trial_launch: 'in_process' runs one worker per trial, but workers_per_trial is "
                             f"{self.workers_per_trial}; use 'torch_trainer' or 'auto'")
        return self

    @property
    def in_process(self) -> bool:
        """Whether trials train inside their Tune trainable (no worker group of their own)."""
        return self.trial_launch == "in_process" or (self.trial_launch == "auto" and self.workers_per_trial == 1)

    def worker_resources(self) -> dict[str, float]:
        """What one training worker holds, in Ray's resource names (no GPU key on a CPU grid)."""
        return {"CPU": self.cpus_per_worker} | ({"GPU": self.gpus_per_worker} if self.gpus_per_worker else {})


class DataSpec(BaseModel):
    model_config = _STRICT

    source: str = Field("hub", description="'hub', 'mini' (the shipped mini datasets) or a folder of JSONL.")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value in ("hub", "mini"):
            return value
        if not value.strip():
            raise ValueError("is empty; use 'hub', 'mini' or a folder path")
        return value


class WandbSpec(BaseModel):
    model_config = _STRICT

    project: str = "ptft"
    entity: str | None = None
    mode: Literal["auto", "online", "offline", "disabled"] = Field(
        "auto", description="auto: online when WANDB_API_KEY is set, else offline."
    )
    log_models: bool = Field(False, description="Log each cell's winning model (or adapter) as a W&B artifact.")

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                if "key" in str(key).lower() or "token" in str(key).lower():
                    raise ValueError(
                        f"{key!r}: secrets never go in a spec; export WANDB_API_KEY in the environment instead"
                    )
        return value


_STORAGE = re.compile(r"^(s3|gs|gcs)://[^/]+")


class ExperimentSpec(BaseModel):
    """The whole grid: one YAML file."""

    model_config = _STRICT

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    model: ModelSpec | None = Field(None, description="The pre-trained model and its checkpoints (or `models:`).")
    models: list[ModelSpec] | None = Field(None, min_length=1, description=(
        "Several pre-trained models, each with its checkpoints: the grid compares them (names must differ)."))
    # Declared tasks (docs/tasks.md): parse_spec reads the `tasks:` list (files and inline declarations)
    # and registers them before the datasets are validated; the objects travel to the workers with the jobs.
    tasks: tuple[TaskDeclaration, ...] = ()
    # Raw-text corpora for continual_pt stages (docs/continual_pt.md), registered before the recipes are
    # validated and carried to the workers like the declared tasks. Folders resolve against the spec's.
    corpora: tuple[CorpusSpec, ...] = ()
    data: DataSpec = Field(default_factory=DataSpec)
    train: TrainSpec
    recipes: dict[str, list[StageSpec]] = Field(
        default_factory=dict, description="Multi-stage training: name -> ordered stages (docs/recipes.md).")
    eval: EvalSpec
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    storage: str = Field(description="Local folder, s3://bucket/prefix or gs://bucket/prefix.")
    wandb: WandbSpec = Field(default_factory=WandbSpec)

    # Where the YAML lives: relative local paths (checkpoints, storage, data) resolve against it.
    base_dir: str = Field(".", exclude=True)

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        if "://" in value and not _STORAGE.match(value):
            raise ValueError(f"{value!r}: use a local folder, s3://bucket/prefix or gs://bucket/prefix")
        if not value.strip():
            raise ValueError("is empty")
        return value

    @field_validator("recipes")
    @classmethod
    def _recipes(cls, value: dict[str, list[StageSpec]]) -> dict[str, list[StageSpec]]:
        return _check_recipes(value)

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, value: list[ModelSpec] | None, info: ValidationInfo) -> list[ModelSpec] | None:
        if value is None:
            return value
        if info.data.get("model") is not None:
            raise ValueError("give either model (one) or models (a list), not both")
        names: dict[str, int] = {}
        checkpoints: dict[tuple[str, str], tuple[int, str]] = {}
        folders: dict[str, tuple[int, str]] = {}
        for i, model in enumerate(value):
            if model.family in names:  # results tell models apart by name (base_model)
                raise ValueError(f"[{i}]: name {model.family!r} is already models[{names[model.family]}]'s; "
                                 "give each model its own name")
            names[model.family] = i
            for j, ref in enumerate(model.checkpoint_refs()):
                same = checkpoints.get((model.id, repr(sorted(ref.identity().items()))))
                if same is not None:  # same weights: their cells and eval jobs would share ids
                    raise ValueError(f"[{i}].checkpoints[{j}]: {ref.label!r} of {model.id!r} is already "
                                     f"models[{same[0]}]'s checkpoint {same[1]!r}; list each checkpoint once")
                checkpoints[(model.id, repr(sorted(ref.identity().items())))] = (i, ref.label)
                folder = base_model_key(qualified_label(model.family, ref.label))
                if folder in folders:
                    raise ValueError(f"[{i}].checkpoints[{j}]: its eval folder {folder!r} is also models"
                                     f"[{folders[folder][0]}]'s checkpoint {folders[folder][1]!r}; rename one")
                folders[folder] = (i, ref.label)
        return value

    @model_validator(mode="after")
    def _a_model(self) -> ExperimentSpec:
        if self.model is None and self.models is None:
            raise ValueError("model: required field is missing (or give models: a list)")
        if not self.train.datasets and not self.recipes:
            raise ValueError("train.datasets: nothing to train; list datasets, or give recipes:")
        for name, stages in self.recipes.items():  # a reward model's folder resolves against the YAML's
            for i, stage in enumerate(stages):
                if isinstance(stage.reward, RewardModelSpec):
                    try:
                        stage.reward.reward_model(self.base_dir)
                    except ValueError as err:
                        raise ValueError(f"recipes.{name}[{i}].reward.{err}") from None
        return self

    def model_specs(self) -> list[ModelSpec]:
        """The pre-trained models of the grid, in the spec's order (one for a spec of `model:`)."""
        return list(self.models) if self.models is not None else [self.model]  # type: ignore[list-item]

    def model_name_of(self, model: ModelSpec) -> str | None:
        """How the plan names `model`: None in a spec of one `model:` (its ids, names and folders are
        today's), else its name, which qualifies its cells' labels and base folders."""
        return None if self.models is None else model.family

    def model_named(self, model_name: str | None) -> ModelSpec:
        """The model a plan entry names (`model_name` None: the spec's one `model:`)."""
        if model_name is None:
            assert self.model is not None, "a plan of models: names each entry's model"
            return self.model
        return next(m for m in self.models or [] if m.family == model_name)

    def checkpoint_families(self) -> dict[str, Family]:
        """Model id -> its checkpoint naming, for `RevisionResolver(families=...)`."""
        return {m.id: m.checkpoint_naming() for m in self.model_specs()}

    def storage_root(self) -> str:
        if "://" in self.storage:
            return self.storage.rstrip("/")
        path = os.path.expanduser(self.storage)
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(self.base_dir, path))

    def data_source(self) -> str:
        source = self.data.source
        if source in ("hub", "mini") or os.path.isabs(source):
            return source
        return os.path.normpath(os.path.join(self.base_dir, source))


# ------------------------------------------------------------------------------------ recipes
STAGE_KINDS = ("sft", "continual_pt", "dpo", "rejection_sampling")
# The TrainConfig fields a stage may set for itself (the rest come from the train: section).
STAGE_TRAIN_FIELDS = ("epochs", "max_steps", "warmup_ratio", "max_length", "batch_size", "grad_accum", "packing",
                      "val_size")


class ReplaySpec(BaseModel):
    """Continual pre-training: mix in documents of an older corpus (docs/continual_pt.md)."""

    model_config = _STRICT

    dataset: str = Field(description="The replayed (older) corpus.")
    ratio: float = Field(gt=0.0, lt=1.0, description="Fraction of training documents drawn from it.")


class RewardModelSpec(BaseModel):
    """A rejection_sampling stage's reward model (docs/rejection_sampling.md): a sequence classifier with
    one output that scores (prompt, reply), by hub id or local folder."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str = Field(min_length=1, description="Hub id of a reward model, or a local model folder.")
    revision: str | None = Field(None, description="Hub revision.")
    input: Literal["auto", "chat_template", "pair", "text"] = Field(
        "auto", description="How (prompt, reply) is fed: chat_template | pair | text | auto (chat template if any).")
    max_length: int = Field(2048, ge=8, description="Tokens per scored input (cut from the left).")
    batch_size: int = Field(8, ge=1, description="Replies scored per forward pass.")

    def reward_model(self, base_dir: str) -> Any:
        """The `evals.reward_model.RewardModel`: a local folder by absolute path, with its files' digest."""
        from evals.reward_model import RewardModel, local_files_digest

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

    model_config = _STRICT

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
        return _check_lr_list(value)

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
                _check_formats(self.formats, where="formats")
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
        _check_formats([fmt], where="format")
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
        return _lr_values(self.learning_rates) if self.learning_rates is not None else train.lrs_for(entry, method)


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


def _check_recipes(recipes: dict[str, list[StageSpec]]) -> dict[str, list[StageSpec]]:
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


# ------------------------------------------------------------------------------------ loading
def load_spec(path: str, overrides: list[str] | None = None) -> ExperimentSpec:
    """Read and validate a spec file. `overrides` are `dotted.key=yaml_value` strings (CLI); a list item
    is addressed by its index, `train.datasets[0]=paws`."""
    try:
        raw = read_yaml(path)
    except FileNotFoundError:
        raise SpecError([f"file not found: {path}"]) from None
    except YamlError as err:
        raise SpecError([str(err)]) from None
    if not isinstance(raw, dict):
        raise SpecError(["the top level must be a mapping of sections (name, model, train, eval, ...)"],
                        source=path)
    for item in overrides or []:
        _apply_override(raw, item)
    return parse_spec(raw, base_dir=os.path.dirname(os.path.abspath(path)), source=path)


def load_spec_or_report(path: str, overrides: list[str] | None = None) -> ExperimentSpec | None:
    """For commands: the spec, or None after printing why it cannot run (the caller exits with 2)."""
    import sys

    try:
        return load_spec(path, overrides)
    except SpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def parse_spec(raw: dict[str, Any], base_dir: str = ".", source: str | None = None) -> ExperimentSpec:
    if "base_dir" in raw:
        raise SpecError(["base_dir: unknown key (it is set from the file's location)"], source=source)
    if "model" not in raw and "models" not in raw:
        raise SpecError(["model: required field is missing (or give models: a list of models)"], source=source)
    declarations = _declared_tasks(raw.get("tasks"), base_dir, source)
    corpora = _declared_corpora(raw.get("corpora"), base_dir, source)
    try:
        return ExperimentSpec.model_validate({**raw, "tasks": declarations, "corpora": corpora, "base_dir": base_dir})
    except ValidationError as err:
        raise SpecError(explain(err, ExperimentSpec, hidden={"base_dir"}), source=source) from None


def _declared_tasks(value: Any, base_dir: str, source: str | None) -> tuple[TaskDeclaration, ...]:
    """The spec's `tasks:` (task files and inline declarations), registered in this process now: the
    datasets sections name them, and are validated against the registry."""
    from ptft import tasks

    if isinstance(value, tuple):
        value = list(value)
    try:
        if isinstance(value, list) and all(isinstance(item, TaskDeclaration) or (
                isinstance(item, dict) and "declared_in" in item) for item in value):
            # a dumped spec read back (model_dump): its declarations are already read and resolved
            declarations = tuple(TaskDeclaration.model_validate(item) for item in value)
        else:
            declarations = tasks.declarations_from_spec_value(value, base_dir=base_dir, path=source, key="tasks")
        for declaration in declarations:
            tasks.register_declared(declaration)
    except tasks.TaskDeclarationError as err:
        raise SpecError(str(err).splitlines()) from None
    except tasks.DeclarationConflict as err:
        raise SpecError([f"tasks: {err}"], source=source) from None
    return declarations


def _declared_corpora(value: Any, base_dir: str, source: str | None) -> tuple[CorpusSpec, ...]:
    """The spec's `corpora:` list, validated and registered in this process (recipes name them)."""
    from ptft.tasks.corpora import register_corpus

    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise SpecError(["corpora: a list of corpora ({name, folder | hub, text_field, ...})"], source=source)
    corpora = []
    for i, item in enumerate(value):
        try:
            corpus = item if isinstance(item, CorpusSpec) else CorpusSpec.model_validate(item)
        except ValidationError as err:
            raise SpecError([f"corpora[{i}].{line}" for line in explain(err, CorpusSpec)], source=source) from None
        if corpus.folder is not None and not os.path.isabs(os.path.expanduser(corpus.folder)):
            corpus = corpus.model_copy(update={"folder": os.path.normpath(os.path.join(base_dir, corpus.folder))})
        try:
            corpora.append(register_corpus(corpus))
        except ValueError as err:
            raise SpecError([f"corpora[{i}]: {err}"], source=source) from None
    return tuple(corpora)


_INDEXED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


def _apply_override(raw: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise SpecError([f"--set {item!r}: expected key=value, e.g. --set train.epochs=1"])
    key, text = item.split("=", 1)
    try:
        value = parse_yaml(text, source=f"--set {key}")
    except YamlError as err:
        raise SpecError([f"{err} (quote a string value: --set '{key}=\"...\"')"]) from None
    steps: list[str | int] = []
    for part in key.strip().split("."):
        match = _INDEXED.match(part)
        if match is None:
            raise SpecError([f"--set {item!r}: {part!r} is not a field name (a list item is name[index])"])
        steps.append(match.group(1))
        steps += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    node: Any = raw
    for where, (step, nxt) in enumerate(zip(steps, steps[1:], strict=False)):
        shown = _path(steps[: where + 1])
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise SpecError([f"--set {item!r}: {shown} is out of range ({size} items)"])
            node = node[step]
            continue
        if not isinstance(node, dict):
            raise SpecError([f"--set {item!r}: {_path(steps[:where])} is not a section"])
        node = node.setdefault(step, [] if isinstance(nxt, int) else {})
    last = steps[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise SpecError([f"--set {item!r}: {_path(steps)} is out of range "
                             f"({len(node) if isinstance(node, list) else 0} items)"])
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError([f"--set {item!r}: {_path(steps[:-1])} is not a section"])


def _path(steps: list[str | int]) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else (f".{s}" if i else s) for i, s in enumerate(steps))
