"""Where a grid stands, read from its storage markers (nothing else); `ptft status` prints it."""

from __future__ import annotations

from collections import Counter

from ptft.core.layout import GridLayout
from ptft.grid.ledger import GridState, read_state
from ptft.study.plan import Plan


def print_status(plan: Plan, state: GridState | None = None) -> GridState:
    from rich.console import Console
    from rich.table import Table

    layout = GridLayout(plan.spec.storage_root())
    state = state or read_state(plan, layout)
    console = Console(width=140)
    counts = state.counts()
    console.print(f"[bold]{plan.spec.name}[/bold]  storage {layout.root}")
    for what in ("trials", "cells", "evals"):
        parts = ", ".join(f"{n} {s}" for s, n in sorted(counts[what].items()))
        console.print(f"  {what:<7} {sum(counts[what].values()):>5}: {parts}")

    table = Table(title="Cells")
    for col in ("cell id", "checkpoint", "dataset", "format", "trials", "state", "winner lr", "evals done"):
        table.add_column(col)
    trials = {t.trial_id: t for t in plan.trials}
    evals_by_cell: dict[str, Counter] = {}
    for job in plan.eval_jobs:
        if job.cell_id:
            evals_by_cell.setdefault(job.cell_id, Counter())[state.evals[job.job_id]] += 1
    for cell in plan.cells:
        trial_states = Counter(state.trials[t.trial_id] for t in plan.trials_of(cell.cell_id))
        winner = state.winners.get(cell.cell_id)
        evals = evals_by_cell.get(cell.cell_id, Counter())
        table.add_row(cell.cell_id, cell.checkpoint_label, cell.train_dataset, cell.train_format,
                      ", ".join(f"{n} {s}" for s, n in sorted(trial_states.items())), state.cells[cell.cell_id],
                      f"{trials[winner].lr:g}" if winner else "-",
                      f"{evals.get('done', 0)}/{sum(evals.values())}")
    console.print(table)
    base = Counter(state.evals[j.job_id] for j in plan.eval_jobs if j.model_kind == "base")
    console.print(f"base-checkpoint evals: {base.get('done', 0)}/{sum(base.values())} done")
    for problem in state.problems:
        console.print(f"[yellow]not trusted, will be redone:[/yellow] {problem}")
    return state
