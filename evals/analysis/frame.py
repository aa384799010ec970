"""Records in, tables out: duplicate checks, checkpoint ordering, the records frame, grid reading."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence

import pandas as pd

from evals.results import ResultRecord, read_records
from ptft.core import storage
from ptft.core.layout import GridLayout

MAIN_STEP = 750_000  # where the study's plots put the final model ("main", step unknown)

# Record fields in the order results.csv shows them.
RECORD_COLUMNS = [f.name for f in dataclasses.fields(ResultRecord)]


class DuplicateRecordError(ValueError):
    """Two or more records share one `ResultRecord.key()`: the analysis will not guess which is right."""


def check_duplicates(records: Sequence[ResultRecord]) -> None:
    """Raise `DuplicateRecordError` naming every key that occurs more than once."""
    counts = Counter(r.key() for r in records)
    dups = [(key, n) for key, n in counts.items() if n > 1]
    if not dups:
        return
    names = ("source", "model_kind", "base_model", "checkpoint", "train_dataset", "train_format", "method", "objective", "prior_stages", "lr",
             "eval_dataset", "eval_format", "shots", "mode", "metric")
    shown = "; ".join(
        f"{n}x {{" + ", ".join(f"{k}={v!r}" for k, v in zip(names, key, strict=True)) + "}" for key, n in dups[:5]
    )
    more = f" (and {len(dups) - 5} more duplicated keys)" if len(dups) > 5 else ""
    raise DuplicateRecordError(f"{len(dups)} duplicated result key(s): {shown}{more}")


def plot_step(checkpoint_step: int | None, main_step: int = MAIN_STEP) -> int:
    """The x position of a checkpoint: its step, or `main_step` for the final model (step None)."""
    return main_step if checkpoint_step is None else int(checkpoint_step)


def checkpoint_order(pairs: Iterable[tuple[str, int | None]], main_step: int = MAIN_STEP) -> list[str]:
    """Checkpoint labels ordered along pre-training (step, with None at `main_step`, then label)."""
    steps: dict[str, int] = {}
    for label, step in pairs:
        steps.setdefault(label, plot_step(step, main_step))
    return sorted(steps, key=lambda label: (steps[label], label))


def is_missing(value: float | None) -> bool:
    """True for None and NaN (the two ways a missing number shows up in these tables)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def records_frame(records: Sequence[ResultRecord], main_step: int = MAIN_STEP) -> pd.DataFrame:
    """All record fields as columns (`extra` as JSON text), plus `step`: the x position along pre-training."""
    rows = []
    for record in records:
        row = record.to_dict()
        row["extra"] = json.dumps(row["extra"], sort_keys=True) if row["extra"] else ""
        row["step"] = plot_step(record.checkpoint_step, main_step)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*RECORD_COLUMNS, "step"])
    return frame.astype({"checkpoint_step": "Int64", "step": "Int64", "n": "Int64", "shots": "Int64"})


def read_grid_records(storage_path: str) -> tuple[list[ResultRecord], list[str]]:
    """Read every model's results table under a grid's storage (`GridLayout(...).eval_outputs()`).

    Returns the records and the list of files read; a model folder without a results file is skipped
    (its eval may still be running), and the caller reports how many were read.
    """
    records: list[ResultRecord] = []
    files: list[str] = []
    for output in GridLayout(storage_path).eval_outputs():
        if storage.exists(output.results):
            records.extend(read_records(output.results))
            files.append(output.results)
    return records, files
