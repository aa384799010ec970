"""The experiment spec: one YAML file -> typed, validated config objects.

Each layer owns its part (`TrainConfig` in trainers/, `EvalConfig` in evals/, the dataset registry in
tasks/); this module composes them into the grid and checks everything that can be checked before a
GPU is asked for. Unknown keys are errors. Every error names the YAML field, the bad value and what is
allowed, e.g. ``train.datasets[2]: unknown dataset 'mlni' (did you mean 'mnli'?)``.

The sections live in their own modules (`spec_model`, `spec_train`, `spec_eval`, `spec_recipes`); this
one holds the whole grid (`ExperimentSpec`) and how a file becomes one (`load_spec`, `--set` overrides).
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ptft.core.layout import base_model_key
from ptft.core.yaml_files import YamlError, parse_yaml, read_yaml
from ptft.study.checkpoints import (
    Family,
)
from ptft.study.spec_errors import SpecError, explain
from ptft.study.spec_eval import EvalSpec
from ptft.study.spec_fields import STRICT, lacking_formats
from ptft.study.spec_model import ModelSpec, qualified_label
from ptft.study.spec_recipes import RewardModelSpec, StageSpec, check_recipes
from ptft.study.spec_train import TrainSpec
from ptft.tasks.corpora import CorpusSpec
from ptft.tasks.declared import TaskDeclaration


# ------------------------------------------------------------------- resources, data, W&B, the whole grid
class ResourcesSpec(BaseModel):
    model_config = STRICT

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
    model_config = STRICT

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
    model_config = STRICT

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

    model_config = STRICT

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
        return check_recipes(value)

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
        for name, stages in self.recipes.items():
            for i, stage in enumerate(stages):
                self._stage_formats_exist(name, i, stage)
                if isinstance(stage.reward, RewardModelSpec):  # its folder resolves against the YAML's
                    try:
                        stage.reward.reward_model(self.base_dir)
                    except ValueError as err:
                        raise ValueError(f"recipes.{name}[{i}].reward.{err}") from None
        return self

    def _stage_formats_exist(self, name: str, i: int, stage: StageSpec) -> None:
        """An sft stage trains each dataset in its formats (the entry's, else the stage's, else train:'s):
        every one must exist for the dataset (Tulu has only default)."""
        if stage.kind != "sft":
            return
        for j, entry in enumerate(stage.sft_datasets()):
            lacking = lacking_formats(entry.name, entry.formats or stage.formats or self.train.formats,
                                      self.train.mode)
            if lacking:
                raise ValueError(f"recipes.{name}[{i}].datasets[{j}]: {lacking}; set the stage's formats: or the "
                                 "dataset's")

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
