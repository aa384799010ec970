"""The ledger: the state of every trial, cell and eval job, derived from storage markers alone.

Nothing is kept in memory between runs, so a crashed or stopped driver loses nothing: re-running the
same command reads the markers, skips what is done and continues the rest.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ptft.core import storage
from ptft.core.integrity import record_problem, train_output_problem
from ptft.core.layout import GridLayout, base_model_key, trial_model_key
from ptft.study.plan import PLAN_VERSION, Plan, PlannedEval
from ptft.study.spec import qualified_label


@dataclass
class GridState:
    trials: dict[str, str] = field(default_factory=dict)  # done | early_stopped | invalid | started | pending
    cells: dict[str, str] = field(default_factory=dict)  # selected | training | pending
    evals: dict[str, str] = field(default_factory=dict)  # done | ready | waiting
    winners: dict[str, str] = field(default_factory=dict)  # cell_id -> winning trial_id
    # Markers that did not verify, path-level reasons: their work is redone (trials retrain, evals rerun).
    problems: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Counter]:
        return {"trials": Counter(self.trials.values()), "cells": Counter(self.cells.values()),
                "evals": Counter(self.evals.values())}

    @property
    def complete(self) -> bool:
        return all(s == "done" for s in self.evals.values()) and all(
            s == "selected" for s in self.cells.values())


def eval_model_key(job: PlannedEval, winners: dict[str, str]) -> str | None:
    """The folder of the model a job evaluates; None while a winner is not chosen yet."""
    if job.model_kind == "base":
        return base_model_key(qualified_label(job.model_name, job.checkpoint))
    if job.trial_id is not None:
        return trial_model_key(job.trial_id)
    winner = winners.get(job.cell_id or "")
    return trial_model_key(winner) if winner else None


class StorageVersionError(ValueError):
    """The storage holds a grid planned by another plan version: its ids mean something else."""


def check_plan_version(layout: GridLayout) -> None:
    """Refuse a storage written under another `PLAN_VERSION` rather than mix its results with new ones."""
    if not storage.exists(layout.plan_file):
        return
    found = storage.read_json(layout.plan_file).get("plan_version", 1)
    if found != PLAN_VERSION:
        raise StorageVersionError(
            f"storage {layout.root} holds a grid of plan version {found}; this ptft plans version "
            f"{PLAN_VERSION}, whose ids differ. Use a new storage folder (or delete this one).")


def read_state(plan: Plan, layout: GridLayout, verified: set[str] | None = None) -> GridState:
    """Every trial's, cell's and eval job's state from the markers, each marker verified first.

    `verified` caches the markers (COMPLETED, records) that verified earlier in the same run: a grid reads
    its state after every trial, and a verified marker is only replaced by a recomputation."""
    state = GridState()
    started = set(storage.list_dir(layout.train_root))
    for trial in plan.trials:
        out = layout.trial(trial.trial_id)
        problem = None if verified is not None and out.completed in verified else train_output_problem(out)
        if problem is not None:  # COMPLETED, but what it vouches for does not verify: train it again
            state.trials[trial.trial_id] = "invalid"
            state.problems.append(f"trial {trial.trial_id}: {problem}")
        elif storage.exists(out.completed):
            state.trials[trial.trial_id] = "done"
            if verified is not None:
                verified.add(out.completed)
        elif storage.exists(out.early_stopped) and _parses(out.early_stopped, state):
            state.trials[trial.trial_id] = "early_stopped"
        elif trial.trial_id in started:
            state.trials[trial.trial_id] = "started"
        else:
            state.trials[trial.trial_id] = "pending"
    for cell in plan.cells:
        path = layout.selection_file(cell.cell_id)
        trial_states = {state.trials[t.trial_id] for t in plan.trials_of(cell.cell_id)}
        winner = _selected_winner(path, state)
        if winner is not None:
            state.cells[cell.cell_id] = "selected"
            state.winners[cell.cell_id] = winner
        elif trial_states <= {"pending"}:
            state.cells[cell.cell_id] = "pending"
        else:
            state.cells[cell.cell_id] = "training"
    for job in plan.eval_jobs:
        key = eval_model_key(job, state.winners)
        if key is None:
            trial_ready = job.trial_id is not None and state.trials.get(job.trial_id) == "done"
            state.evals[job.job_id] = "ready" if trial_ready else "waiting"
        elif _record_verifies(layout.evals(key).record(job.job_id), job.job_id, state, verified):
            state.evals[job.job_id] = "done"
        elif state.trials.get(job.trial_id or state.winners.get(job.cell_id or "", "")) not in (None, "done"):
            state.evals[job.job_id] = "waiting"  # its model is not (or no longer) trained
        else:
            state.evals[job.job_id] = "ready"
    _harness_pending(plan, layout, state)
    return state


def _harness_pending(plan: Plan, layout: GridLayout, state: GridState) -> None:
    """With `eval.harness_tasks`, a model is done only when its lm-eval marker is there too: its jobs go
    back to ready (their ptft records are cached; only the harness runs), so adding harness tasks to a
    finished grid evaluates them."""
    config = plan.spec.eval.harness_config()
    if config is None:
        return
    from evals.harness import run_name

    name = run_name(config)
    missing: dict[str, bool] = {}
    for job in plan.eval_jobs:
        if state.evals[job.job_id] != "done":
            continue
        key = eval_model_key(job, state.winners)
        if key not in missing:
            missing[key] = not storage.exists(layout.evals(key).harness(name))
        if missing[key]:
            state.evals[job.job_id] = "ready"


def _parses(path: str, state: GridState) -> bool:
    try:
        storage.read_json(path)
        return True
    except ValueError as err:
        state.problems.append(f"{path} does not parse ({type(err).__name__}); the trial runs again")
        return False


def _selected_winner(path: str, state: GridState) -> str | None:
    """The winning trial a selection file names; None (and a problem) when it is absent or unreadable."""
    if not storage.exists(path):
        return None
    try:
        return storage.read_json(path)["winner"]["trial_id"]
    except (ValueError, KeyError, TypeError) as err:  # truncated or not ours: select the cell again
        state.problems.append(f"{path} does not parse ({type(err).__name__}); the cell is selected again")
        return None


def _record_verifies(path: str, job_id: str, state: GridState, verified: set[str] | None) -> bool:
    if verified is not None and path in verified:
        return True
    if not storage.exists(path):
        return False
    problem = record_problem(path, job_id)
    if problem is not None:
        state.problems.append(f"eval job {job_id}: {problem}")
        return False
    if verified is not None:
        verified.add(path)
    return True
