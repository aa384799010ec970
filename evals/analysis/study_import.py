"""Import the study's published tables (docs/study.md §7) into `ResultRecord`s.

Two tables, two harnesses, two sources: the main table (`all_perf_table.csv`: unnamed index,
`model_id`, `eval dataset`, `Performance`, `std`) becomes source "study"; the official
multiple-choice table (`official_eval_table.csv`: no std) becomes "study_official". Where both hold
the same model and dataset (qqp, rte) the records stay distinct through their source.
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from evals.results import ResultRecord
from ptft.core import storage

STUDY_BASE_MODEL = "allenai/OLMo-1B-hf"
STUDY_MODE = "faithful"
OFFICIAL_SHOTS = 4  # the official table records no shot count; the study's IT evals ran 4-shot (docs/study.md §5.5)
STUDY_TRAIN_FORMAT = "default"  # the study trains on the default format only (docs/study.md §2)
GENERATION_EVALS = frozenset({"xsum", "xlsum", "cnn", "socialiqa", "tweetqa", "sciq"})  # ROUGE-L; the rest accuracy
FORMAT_SUFFIXES = (("_inputoutput", "io"), ("_instruct", "instruct"))
OFFICIAL_RENAMES = {"sciq": "sciq_mc"}  # the MC table's sciq is multiple choice, not question generation

_SHOTS = r"(?:_(?P<shots>\d+)shots)?"
_FINETUNED = re.compile(
    r"^olmo1b_hf_(?:ckpt(?P<step>\d+)|main)_(?P<train>[a-z0-9]+)_(?P<epochs>\d+)epoch_(?P<lr>\d+(?:\.\d+)?e-?\d+)"
    + _SHOTS + "$")
_BASE_CHECKPOINT = re.compile(r"^olmo1b_checkpoint-(?P<step>\d+)_original_hf" + _SHOTS + "$")
_BASE_MAIN = re.compile(r"^olmo1b_original_hf" + _SHOTS + "$")
# Pre-HF-fix 0-shot runs and one stray id; the study's own figures ignore them.
_LEGACY = (re.compile(r"^olmo1b_checkpoint-\d+_original" + _SHOTS + "$"), re.compile(r"^checkpoint-\d+" + _SHOTS + "$"))
_OFFICIAL_BASE = re.compile(r"^checkpoint-(?P<step>\d+)$")


class SkippedModelId(ValueError):
    """A model id the importer does not turn into a record; `reason` is "legacy" or "unrecognised"."""

    def __init__(self, model_id: str, reason: str) -> None:
        super().__init__(f"{reason} model id: {model_id!r}")
        self.model_id = model_id
        self.reason = reason

    def __reduce__(self):  # crosses processes (Ray) intact
        return type(self), (self.model_id, self.reason)


@dataclass(frozen=True)
class ParsedModel:
    """What a study model id says about the model."""

    model_kind: str  # "base" | "finetuned"
    checkpoint: str  # "1000", ..., "main"
    checkpoint_step: int | None  # None for main
    shots: int
    train_dataset: str | None = None
    lr: float | None = None
    epochs: int | None = None


def _checkpoint(step: str | None) -> tuple[str, int | None]:
    return ("main", None) if step is None else (str(int(step)), int(step))


def parse_model_id(model_id: str, official: bool = False) -> ParsedModel:
    """Parse a `model_id` of the main table (or, with `official`, of the official MC table).

    Raises `SkippedModelId` for legacy and unrecognised ids.
    """
    match = _FINETUNED.match(model_id)
    if match:
        checkpoint, step = _checkpoint(match["step"])
        shots = OFFICIAL_SHOTS if official else int(match["shots"] or 0)
        return ParsedModel("finetuned", checkpoint, step, shots, match["train"], float(match["lr"]),
                           int(match["epochs"]))
    if official:
        base = _OFFICIAL_BASE.match(model_id)
        if base:
            checkpoint, step = _checkpoint(base["step"])
            return ParsedModel("base", checkpoint, step, OFFICIAL_SHOTS)
        if model_id == "olmo1b_original_hf":
            return ParsedModel("base", "main", None, OFFICIAL_SHOTS)
        raise SkippedModelId(model_id, "unrecognised")
    for pattern in (_BASE_CHECKPOINT, _BASE_MAIN):
        match = pattern.match(model_id)
        if match:
            checkpoint, step = _checkpoint(match.groupdict().get("step"))
            return ParsedModel("base", checkpoint, step, int(match["shots"] or 0))
    if any(p.match(model_id) for p in _LEGACY):
        raise SkippedModelId(model_id, "legacy")
    raise SkippedModelId(model_id, "unrecognised")


def parse_eval_name(name: str, official: bool = False) -> tuple[str, str]:
    """Study eval name -> (registry dataset name, format): `_instruct` -> instruct, `_inputoutput` -> io."""
    fmt = "default"
    for suffix, suffix_format in FORMAT_SUFFIXES:
        if name.endswith(suffix):
            name, fmt = name[: -len(suffix)], suffix_format
            break
    if name.startswith("llmbar_"):
        name = name.lower()  # llmbar_Adversarial_Neighbor -> llmbar_adversarial_neighbor
    if official:
        name = OFFICIAL_RENAMES.get(name, name)
    return name, fmt


@dataclass
class ImportReport:
    """The records of one table and what was skipped, with examples (nothing is skipped silently)."""

    path: str
    source: str
    rows: int = 0
    records: list[ResultRecord] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, example: str) -> None:
        self.skipped[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if example not in shown and len(shown) < 5:
            shown.append(example)

    def notes(self) -> list[str]:
        """One line for the table, one per skip reason."""
        lines = [f"{self.path} ({self.source}): {self.rows} rows -> {len(self.records)} records"]
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"{self.path}: skipped {count} rows with {reason} (e.g. {', '.join(self.examples[reason])})")
        return lines


def _read_table(path: str, required: tuple[str, ...]) -> pd.DataFrame:
    table = pd.read_csv(io.StringIO(storage.read_text(path)), index_col=0)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    return table


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def import_study_table(path: str, official: bool = False) -> ImportReport:
    """Read the main table (or, with `official`, the official MC table) into records plus a skip report."""
    required = ("model_id", "eval dataset", "Performance") + (() if official else ("std",))
    table = _read_table(path, required)
    source = "study_official" if official else "study"
    report = ImportReport(path=path, source=source, rows=len(table))
    for row in table.to_dict("records"):
        model_id, eval_name = str(row["model_id"]), str(row["eval dataset"])
        try:
            model = parse_model_id(model_id, official=official)
        except SkippedModelId as skipped:
            report.skip(f"{skipped.reason} model id", model_id)
            continue
        value = _number(row["Performance"])
        if value is None:
            report.skip("no Performance value", f"{model_id}/{eval_name}")
            continue
        eval_dataset, eval_format = parse_eval_name(eval_name, official=official)
        report.records.append(ResultRecord(
            model_kind=model.model_kind, base_model=STUDY_BASE_MODEL, checkpoint=model.checkpoint,
            checkpoint_step=model.checkpoint_step, train_dataset=model.train_dataset,
            train_format=STUDY_TRAIN_FORMAT if model.model_kind == "finetuned" else None, lr=model.lr,
            eval_dataset=eval_dataset, eval_format=eval_format, shots=model.shots,
            metric="acc" if official else ("rougeL" if eval_dataset in GENERATION_EVALS else "accuracy"),
            value=value, std=None if official else _number(row.get("std")), n=None,
            mode=STUDY_MODE, source=source, epochs=model.epochs,
            extra={"study_model_id": model_id, "study_eval_name": eval_name,
                   **({"shots_assumed": True} if official else {})},
        ))
    return report
