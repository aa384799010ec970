"""Tasks users declare: a typed declaration, checked before anything runs, that becomes a registry entry.

    from ptft.tasks import load_task_file, register_declared, training_set
    for declaration in load_task_file("configs/tasks/rte_declared.yaml"):
        register_declared(declaration)            # idempotent; Ray workers call it with the same object
    training_set("rte_declared", "default", source="hub")

A declared task renders through the same code as a built-in one (`formats/render.py`, `sets.py`), in fixed
mode only: faithful mode is the study's code, so it exists for the study's datasets alone. Its template
text is registered in `formats.templates.TEMPLATES` (so it is hashed into `template_version` as a built-in
template is), and everything else that defines a result (source, splits, columns, labels, metric, stops,
subset rule; a folder's file bytes rather than its path) goes into `TaskSpec.declaration_digest`, also in
`template_version`. The schema, rules and commands: docs/tasks.md.

What travels to a Ray worker is the `TaskDeclaration` itself (a frozen pydantic model, pickled with the
job); the worker calls `register_declared` before building its data. Reading YAML files and the spec's
`tasks:` list is in `declared_files.py`.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ptft.core.ids import content_hash
from ptft.tasks.errors import did_you_mean
from ptft.tasks.formats.render import is_column_path
from ptft.tasks.formats.templates import TEMPLATE_OPTIONS, TEMPLATES
from ptft.tasks.metrics import GENERATION_METRICS, METRICS
from ptft.tasks.registry import BUILTIN_TASKS, REGISTRY
from ptft.tasks.types import FORMATS, TASK_TYPES, TaskSpec

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a task name is a folder name and a record field
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a placeholder: a plain identifier

# Per task type: the fields a column mapping must have, and those holding the gold answer (never shown in
# a prompt); these are the names the renderer reads (formats/render.py).
_REQUIRED = {"classification": ("label",), "generation": ("target",), "multiple_choice": ("choices", "answer"),
             "chat": ("messages",)}
_ANSWER = {"classification": {"label"}, "generation": {"target"},
           "multiple_choice": {"choices", "answer", "choice_labels"}, "chat": {"messages"}}
_DEFAULT_METRIC = {"classification": "accuracy", "generation": "rougeL", "multiple_choice": "accuracy",
                   "chat": "none"}

_Text = Annotated[str, Field(min_length=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSource(_Frozen):
    """Where the rows come from: a hub dataset (`hub`, optional `config`) or a `folder` of <split>.jsonl."""

    hub: _Text | None = Field(None, description="Hub dataset id, loaded with datasets.load_dataset(hub, config).")
    config: _Text | None = Field(None, description="Hub config name (hub sources only).")
    folder: _Text | None = Field(None, description="Folder of <split>.jsonl files; relative paths are read "
                                                   "from the declaring file's folder.")

    @field_validator("folder")
    @classmethod
    def _resolve(cls, folder: str | None, info: ValidationInfo) -> str | None:
        # relative to the file that declares it, as an include path is; the loaders pass that folder
        base = (info.context or {}).get("base_dir") if info.context else None
        if folder is None:
            return None
        path = Path(os.path.expanduser(folder))
        return str((Path(base) / path).resolve() if base is not None and not path.is_absolute() else path)

    @model_validator(mode="after")
    def _one_source(self) -> TaskSource:
        if (self.hub is None) == (self.folder is None):
            raise ValueError("give exactly one of source.hub (a hub dataset id) and source.folder")
        if self.config is not None and self.hub is None:
            raise ValueError("config: a config name belongs to a hub source (source.hub)")
        return self


class TaskSplits(_Frozen):
    """Split names: a hub split, or the <split>.jsonl file of a folder source."""

    train: _Text | None = Field(None, description="Split trained on (None: an eval-only task).")
    eval: _Text | None = Field(None, description="Split scored (None: a training-only task).")
    fewshot: _Text | None = Field(None, description="Split the k shots are drawn from (default: train, "
                                                    "else eval, whose drawn rows are then not scored).")

    def fewshot_split(self) -> str | None:
        return self.fewshot or self.train or self.eval

    def names(self) -> dict[str, str]:
        """Field -> split name, for every split the task reads."""
        named = {"train": self.train, "eval": self.eval, "fewshot": self.fewshot_split() if self.eval else None}
        return {key: value for key, value in named.items() if value is not None}


class TaskDeclaration(_Frozen):
    """One task declared in YAML (docs/tasks.md). Validated on construction; `task_spec()` is its entry."""

    name: str = Field(..., description="Short name used in specs, records and folders; not a built-in's.")
    type: str = Field(..., description="classification | generation | multiple_choice | chat.")
    source: TaskSource
    splits: TaskSplits
    columns: dict[str, str] = Field(..., description="Our field name (a template placeholder) -> dataset "
                                                     "column ('answers[0]': an item, 'choices.text': a key).")
    templates: dict[str, str] = Field(default_factory=dict, description="Format -> prompt with {field} "
                                                                         "placeholders (chat: none).")
    label_words: tuple[StrictStr, ...] | None = Field(None, description="Classification: the word of each label.")
    label_values: tuple[StrictInt, ...] | tuple[StrictStr, ...] | None = Field(
        None, description="Classification: the raw label of each word (default 0, 1, ...).")
    metric: str | None = Field(None, description="accuracy | rougeL | exact_match | f1 (default by type).")
    stop: tuple[_Text, ...] | None = Field(None, description="Generation: stop sequences for every format "
                                                             "(default: the format's own).")
    single_line_target: bool = Field(False, description="Generation: gold targets are one line, so the "
                                                        "default stops include a newline.")
    chance_level: float | None = Field(None, ge=0, le=1, description="Accuracy of a uniform guess "
                                                                     "(classification default: 1 / labels).")
    train_subset_size: int | None = Field(6000, gt=0, description="Rows trained on, after a seeded shuffle "
                                                                  "(the study's 6,000; None: all).")
    subset_seed: int = Field(42, description="Seed of the training subset's shuffle.")
    tokens_per_example: int = Field(100, gt=0, description="Rough tokens per example, for cost estimates.")
    description: str = Field("", description="Free text, shown by `ptft tasks`.")
    declared_in: str = Field("", description="Where it was declared (set by the loaders, not an identity).")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a task name: use letters, digits, '_', '.', '-'")
        if name in BUILTIN_TASKS:
            raise ValueError(f"{name!r} is a built-in task; give the declared task another name")
        return name

    @field_validator("type")
    @classmethod
    def _type(cls, kind: str) -> str:
        if kind not in TASK_TYPES:
            raise ValueError(f"unknown task type {kind!r}{did_you_mean(kind, TASK_TYPES)}; choose from "
                             f"{', '.join(TASK_TYPES)}")
        return kind

    @field_validator("templates")
    @classmethod
    def _formats(cls, templates: dict[str, str]) -> dict[str, str]:
        unknown = [f for f in templates if f not in FORMATS]
        if unknown:
            raise ValueError(f"unknown format {unknown[0]!r}{did_you_mean(unknown[0], FORMATS)}; choose from "
                             f"{', '.join(FORMATS)}")
        return {f: templates[f] for f in FORMATS if f in templates}  # the registry's format order

    @model_validator(mode="after")
    def _consistent(self) -> TaskDeclaration:
        problems = [*_column_problems(self), *_template_problems(self), *_label_problems(self),
                    *_metric_problems(self), *_split_problems(self)]
        if problems:  # one line per field, "field: problem" (declared_files.explain splits them)
            raise ValueError("\n".join(problems))
        return self

    # --- what the registry holds ----------------------------------------------------------------

    @property
    def template_key(self) -> str:
        """The task's key in `TEMPLATES` (chat: the built-in Tulu chat format)."""
        return "chat" if self.type == "chat" else f"declared:{self.name}"

    def resolved_metric(self) -> str:
        """The metric name records carry: multiple-choice accuracy is "acc", as for the built-ins."""
        metric = self.metric or _DEFAULT_METRIC[self.type]
        return "acc" if self.type == "multiple_choice" and metric == "accuracy" else metric

    def identity(self) -> dict[str, Any]:
        """Every field that defines a result, except the templates (hashed per format by template_version).

        A folder source enters as its split files' bytes, so the same data gives the same ids on any
        machine, and edited data new ones. The name is in every id already (as a built-in's is); the
        description, cost estimate and origin define no result.
        """
        data = self.model_dump(mode="json", exclude={"name", "templates", "description", "tokens_per_example",
                                                     "declared_in"})
        if self.source.folder is not None:
            data["source"] = {"folder_files": {split: _file_digest(Path(self.source.folder) / f"{split}.jsonl")
                                               for split in sorted(set(self.splits.names().values()))}}
        return data

    def task_spec(self) -> TaskSpec:
        """The registry entry this declaration stands for (fixed mode only: no faithful formats)."""
        formats = ("default",) if self.type == "chat" else tuple(self.templates)
        words = self.label_words
        chance = self.chance_level
        if chance is None and words:
            chance = 1 / len(words)
        evaluated = {"fixed": self.splits.eval} if self.splits.eval else {}
        return TaskSpec(
            name=self.name, hub_id=self.source.hub or "", hub_config=self.source.config, task_type=self.type,
            family="declared", train_split=self.splits.train, eval_split=evaluated, columns=dict(self.columns),
            label_words=words, metric=self.resolved_metric(), formats=formats,
            train_subset_size=self.train_subset_size, subset_seed=self.subset_seed,
            tokens_per_example=self.tokens_per_example, chance_level=chance, template=self.template_key,
            faithful_formats=(), fewshot_split=self.splits.fewshot_split(), label_values=self.label_values,
            single_line_target=self.single_line_target,
            in_domain_evals=(self.name,) if self.splits.train and self.splits.eval else (),
            notes=self.description, stop=self.stop, data_dir=self.source.folder,
            declaration_digest=content_hash(self.identity(), length=16),
        )

    def same_as(self, other: TaskDeclaration) -> bool:
        """Equal in everything but where each was declared."""
        return self.model_dump(exclude={"declared_in"}) == other.model_dump(exclude={"declared_in"})


def _file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes; None when it is missing (loading it says so, naming the file)."""
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as f:  # in chunks: hashlib.file_digest is Python 3.11+
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except FileNotFoundError:
        return None


# --- the checks, one line per problem, each naming its field ----------------------------------------


def _column_problems(d: TaskDeclaration) -> list[str]:
    problems = []
    for field, path in d.columns.items():
        if not _FIELD.match(field):
            problems.append(f"columns.{field}: a field name must be an identifier (letters, digits, '_')")
        if not is_column_path(path):
            problems.append(f"columns.{field}: {path!r} is not a column path ('col', 'col[0]' or 'col.key')")
    missing = [f for f in _REQUIRED[d.type] if f not in d.columns]
    if missing:
        problems.append(f"columns: a {d.type} task maps a column to {missing[0]!r} "
                        f"(needs {', '.join(_REQUIRED[d.type])})")
    if d.type == "chat" and set(d.columns) != {"messages"}:
        problems.append("columns: a chat task maps only 'messages' (a list of {role, content} turns)")
    if d.type == "classification" and len(d.columns) < 2:
        problems.append("columns: a classification task needs a text column besides 'label'")
    return problems


def placeholders(template: str) -> list[str]:
    """The {field} names of a template, in order; ValueError for anything but plain {field}s."""
    names = []
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if not field or not _FIELD.match(field) or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"placeholder {shown} is not a plain {{field}} (write {{{{ and }}}} for literal braces)")
        names.append(field)
    return names


def _template_problems(d: TaskDeclaration) -> list[str]:
    if d.type == "chat":
        return ["templates: a chat task has no templates (turns render in the Tulu chat format)"] if d.templates else []
    if not d.templates:
        return [f"templates: a {d.type} task needs a template for at least one format ({', '.join(FORMATS)})"]
    problems = []
    shown_fields = [f for f in d.columns if f not in _ANSWER[d.type]]
    for fmt, template in d.templates.items():
        where = f"templates.{fmt}"
        if not template:
            problems.append(f"{where}: the template is empty")
            continue
        try:
            names = placeholders(template)
        except ValueError as err:
            problems.append(f"{where}: {err}")
            continue
        for name in dict.fromkeys(names):
            if name in _ANSWER[d.type]:
                problems.append(f"{where}: placeholder {{{name}}} is the gold answer, which a prompt never shows")
            elif name not in d.columns:
                problems.append(f"{where}: placeholder {{{name}}} names no column{did_you_mean(name, shown_fields)}"
                                f"; mapped columns: {', '.join(shown_fields) or '(none)'}")
    return problems


def _label_problems(d: TaskDeclaration) -> list[str]:
    words, values = d.label_words, d.label_values
    if d.type != "classification":
        named = [n for n, v in (("label_words", words), ("label_values", values)) if v is not None]
        return [f"{n}: only a classification task has labels" for n in named]
    if words is None:
        return ["label_words: a classification task lists its label words"]
    if not words:
        return ["label_words: the list is empty; give the word of each label, e.g. [entailment, neutral]"]
    problems = []
    if len(words) < 2:
        problems.append("label_words: a classification task needs at least two label words")
    for i, word in enumerate(words):
        if not word.strip() or word != word.strip():
            problems.append(f"label_words[{i}]: {word!r} must be a word without surrounding whitespace "
                            "(the join space is added by the format rules)")
    if len(set(words)) < len(words):
        problems.append(f"label_words: duplicate words in {list(words)}")
    if values is not None:
        if len(values) != len(words):
            problems.append(f"label_values: {len(values)} values for {len(words)} label words")
        if len(set(values)) < len(values):
            problems.append(f"label_values: duplicate values in {list(values)}")
    return problems


def _metric_problems(d: TaskDeclaration) -> list[str]:
    problems = []
    if d.metric is not None:
        if d.metric not in METRICS:
            return [f"metric: unknown metric {d.metric!r}{did_you_mean(d.metric, METRICS)}; choose from "
                    f"{', '.join(METRICS)}"]
        allowed = GENERATION_METRICS if d.type == "generation" else () if d.type == "chat" else ("accuracy",)
        if d.metric not in allowed:
            scored = f"is scored by {', '.join(allowed)}" if allowed else "is trained on, never scored"
            problems.append(f"metric: a {d.type} task {scored}, not {d.metric!r}")
    if d.stop is not None and d.type != "generation":
        problems.append("stop: only a generation task has stop sequences")
    if d.single_line_target and d.type != "generation":
        problems.append("single_line_target: only a generation task has targets")
    return problems


def _split_problems(d: TaskDeclaration) -> list[str]:
    s = d.splits
    if s.train is None and s.eval is None:
        return ["splits: name a train split, an eval split, or both"]
    if d.type == "chat" and s.eval is not None:
        return ["splits.eval: a chat task is trained on, never scored; drop the eval split"]
    if s.fewshot is not None and s.eval is None:
        return ["splits.fewshot: shots are for evaluation, and the task has no eval split"]
    return []


# --- registration: the process-wide registry both layers read --------------------------------------

_DECLARED: dict[str, TaskDeclaration] = {}


class DeclarationConflict(ValueError):
    """Two different declarations under one name."""


def conflict(first: TaskDeclaration, second: TaskDeclaration) -> DeclarationConflict:
    """The error for two different declarations of one name: where each was declared, what differs."""
    changed = [key for key in TaskDeclaration.model_fields
               if key != "declared_in" and getattr(first, key) != getattr(second, key)]
    return DeclarationConflict(
        f"task {first.name!r} is declared twice, differently: in {first.declared_in or '(code)'} and in "
        f"{second.declared_in or '(code)'} (they differ in {', '.join(changed)}); give one of them another name")


def register_declared(declaration: TaskDeclaration) -> TaskSpec:
    """Make `declaration` a task of this process (get_task, training_set, eval_set, template_version...).

    Idempotent: an identical declaration (wherever it was declared) returns the entry already there; a
    different one under a registered name raises DeclarationConflict naming both. Call it in every process
    that renders the task: the driver after reading the spec, each Ray worker with the job's declarations.
    """
    existing = _DECLARED.get(declaration.name)
    if existing is not None:
        if existing.same_as(declaration):
            return REGISTRY[declaration.name]
        raise conflict(existing, declaration)
    spec = declaration.task_spec()
    if declaration.type != "chat":
        TEMPLATES[declaration.template_key] = {"fixed": dict(declaration.templates)}
        if declaration.type == "multiple_choice":
            rule = "label" if "choice_labels" in declaration.columns else "index"
            TEMPLATE_OPTIONS[declaration.template_key] = {"mc_answer": rule}
    REGISTRY[declaration.name] = spec
    _DECLARED[declaration.name] = declaration
    return spec


def declared_tasks() -> dict[str, TaskDeclaration]:
    """Every task registered in this process by `register_declared`, by name, in registration order."""
    return dict(_DECLARED)
