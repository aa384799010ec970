"""Learning-rate selection: per cell, the trial with the lowest final validation loss wins.

The choice and every lr's curve are written to `selection/<cell_id>.json`. Selection is a pure function
of the trials' manifests (and early-stop records), so re-running it gives the same answer.
"""

from __future__ import annotations

import math
from typing import Any

from ptft.core import storage
from ptft.core.integrity import train_output_problem
from ptft.core.layout import GridLayout
from ptft.study.plan import Cell, Plan


def read_curve(layout: GridLayout, trial_id: str) -> list[dict[str, Any]]:
    path = layout.trial(trial_id).curve
    return storage.read_json(path) if storage.exists(path) else []


def _final_metrics(layout: GridLayout, trial_id: str) -> tuple[str, dict[str, Any]] | None:
    out = layout.trial(trial_id)
    if storage.exists(out.completed) and train_output_problem(out) is None:
        return "completed", storage.read_json(out.manifest)
    if storage.exists(out.early_stopped):
        return "early_stopped", storage.read_json(out.early_stopped)
    return None


def select_cell(plan: Plan, cell: Cell, layout: GridLayout) -> dict[str, Any] | None:
    """The selection record of `cell`, or None while any of its trials is unfinished."""
    candidates = []
    for trial in plan.trials_of(cell.cell_id):
        final = _final_metrics(layout, trial.trial_id)
        if final is None:
            return None
        status, manifest = final
        val = manifest.get("val_loss")
        candidates.append({
            "trial_id": trial.trial_id, "lr": trial.lr, "status": status,
            "val_loss": val if isinstance(val, (int, float)) and math.isfinite(val) else None,
            "curve": read_curve(layout, trial.trial_id),
        })
    # Only completed trials can win: an early-stopped one has no exported model.
    eligible = [c for c in candidates if c["status"] == "completed" and c["val_loss"] is not None]
    if not eligible:
        eligible = [c for c in candidates if c["status"] == "completed"]
    if not eligible:
        raise RuntimeError(f"cell {cell.cell_id}: no trial completed, nothing to select")
    winner = min(eligible, key=lambda c: (c["val_loss"] if c["val_loss"] is not None else math.inf, c["lr"]))
    return {
        "cell_id": cell.cell_id, "metric": "val_loss", "mode": "min",
        "winner": {"trial_id": winner["trial_id"], "lr": winner["lr"], "val_loss": winner["val_loss"]},
        "candidates": candidates,
    }


def select_and_record(plan: Plan, cell: Cell, layout: GridLayout) -> dict[str, Any] | None:
    """Select `cell` if all its trials are finished and write `selection/<cell_id>.json` (only when it
    changed, so a rerun rewrites nothing); None while a trial is unfinished."""
    record = select_cell(plan, cell, layout)
    if record is None:
        return None
    path = layout.selection_file(cell.cell_id)
    if _stored(path) != record:
        storage.atomic_write_json(path, record)
    return record


def _stored(path: str) -> Any:
    """The selection record in `path`; None when it is absent or does not parse (it is then rewritten)."""
    try:
        return storage.read_json(path) if storage.exists(path) else None
    except ValueError:
        return None


def run_selection(plan: Plan, layout: GridLayout) -> dict[str, dict[str, Any]]:
    """Select every cell whose trials are all finished; returns cell_id -> selection record."""
    selected = {}
    for cell in plan.cells:
        record = select_and_record(plan, cell, layout)
        if record is not None:
            selected[cell.cell_id] = record
    return selected


def selected_winner(layout: GridLayout, cell_id: str) -> str | None:
    """The trial a cell's selection file names as its winner; None before the cell is selected."""
    record = _stored(layout.selection_file(cell_id))
    try:
        return record["winner"]["trial_id"] if record else None
    except (KeyError, TypeError):
        return None
