"""Rejection sampling's first step on Ray: one task per rejection_sampling cell samples and scores its
prompts from the cell's input model and writes the kept set the cell's trials then train on
(docs/rejection_sampling.md). The grid runs it for a wave's cells before the wave's trials.

A cell whose data's marker verifies (`evals.rejection.is_done`) is not sampled again; what crosses Ray is
one `RejectionRun` per cell.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evals.rejection import RejectionConfig, is_done, read_summary
from ptft.core.layout import GridLayout
from ptft.core.wandb_settings import WandbSettings
from ptft.study.checkpoints import RevisionResolver
from ptft.study.plan import Cell, Plan
from ptft.tasks.declared import TaskDeclaration
from ray_jobs.wandb_runs import cell_group


@dataclass(frozen=True)
class RejectionRun:
    """One cell's sampling: the input model, what to sample, where to write, how to score."""

    cell_id: str
    label: str  # the cell's readable name (console)
    group: str  # its W&B group: the cell's trials' and evaluations' (`wandb_runs.cell_group`)
    model: str  # a model folder or hub id
    revision: str | None
    config: RejectionConfig
    out_dir: str
    data_source: str
    tasks: tuple[TaskDeclaration, ...]  # the spec's declared tasks: the worker registers them first
    device: str | None
    precision: str
    batch_size: int
    wandb: WandbSettings | None


def input_model(plan: Plan, cell: Cell, layout: GridLayout, resolver: RevisionResolver) -> tuple[str, str | None]:
    """The model a cell starts from: the stage before's winner, or the checkpoint for a first stage."""
    from ptft.grid.selection import selected_winner

    spec = plan.spec
    if cell.parent is None:
        return spec.model_named(cell.model_name).resolve(resolver, cell.checkpoint, spec.base_dir)
    winner = selected_winner(layout, cell.parent)
    if winner is None:
        raise ValueError(f"cell {cell.label}: the stage before (cell {cell.parent}) has no winner yet")
    return layout.trial(winner).model, None


def pending_runs(plan: Plan, cells: list[Cell], layout: GridLayout, resolver: RevisionResolver,
                 wandb_settings: WandbSettings | None) -> list[RejectionRun]:
    """The rejection_sampling cells among `cells` whose data is not there yet, each as a run."""
    spec = plan.spec
    config = spec.eval.eval_config()
    runs = []
    for cell in cells:
        if cell.rejection is None or is_done(layout.stage_data(cell.cell_id)):
            continue
        model, revision = input_model(plan, cell, layout, resolver)
        runs.append(RejectionRun(cell.cell_id, cell.label, cell_group(cell), model, revision, cell.rejection,
                                 layout.stage_data(cell.cell_id), spec.data_source(), spec.tasks, config.device,
                                 config.precision, config.batch_size, wandb_settings))
    return runs


def sample_one_cell(run: RejectionRun) -> dict[str, Any]:
    """Body of the Ray task: sample, score and keep one cell's prompts; log the summary to W&B."""
    from evals.rejection import sample_and_score
    from ptft.tasks import register_declared
    from ray_jobs.train_trials import quiet_worker
    from ray_jobs.wandb_runs import finish_run, init_run, run_id

    quiet_worker()
    for declaration in run.tasks:  # a Ray worker never read the spec
        register_declared(declaration)
    start = time.perf_counter()
    summary = sample_and_score(run.model, run.config, run.out_dir, run.data_source, revision=run.revision,
                               device=run.device, precision=run.precision, batch_size=run.batch_size)
    summary = {**summary, "seconds": time.perf_counter() - start}
    wandb_run = init_run(run.wandb, run_id=run_id("rejection_sampling", run.cell_id), name=f"rs {run.label}",
                         group=run.group, job_type="rejection_sampling",
                         tags=[f"dataset:{run.config.dataset}", "stage:rejection_sampling",
                               f"reward:{run.config.reward_name}"[:64]],
                         config={"cell_id": run.cell_id, "model": run.model, **run.config.model_dump(mode="json")})
    if wandb_run is not None:
        wandb_run.summary.update({k: summary[k] for k in ("prompts", "samples", "kept", "kept_fraction",
                                                          "mean_best_score", "mean_score")})
    finish_run(wandb_run)
    return summary


def run_rejection_sampling(plan: Plan, cells: list[Cell], layout: GridLayout, resolver: RevisionResolver,
                           wandb_settings: WandbSettings | None,
                           on_wait: Callable[[], None] | None = None) -> dict[str, str]:
    """Sample every rejection_sampling cell of `cells` whose data is missing, as Ray tasks with an
    evaluation's resources; returns cell_id -> "done" or "error: <why>" for the cells it looked at."""
    import ray

    res = plan.spec.resources
    outcome: dict[str, str] = {}
    runs = []
    for cell in cells:
        if cell.rejection is None:
            continue
        try:
            runs.extend(pending_runs(plan, [cell], layout, resolver, wandb_settings))
        except ValueError as err:  # no winner before it: its trials wait for a stage that failed
            outcome[cell.cell_id] = f"error: {err}"
            continue
        outcome[cell.cell_id] = "done"
    task = ray.remote(sample_one_cell).options(num_cpus=res.eval_cpus_per_worker,
                                               num_gpus=res.eval_gpus_per_worker, max_retries=1)
    pending = {task.remote(run): run for run in runs}
    while pending:
        finished, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        if on_wait is not None:
            on_wait()
        for ref in finished:
            run = pending.pop(ref)
            try:
                summary = ray.get(ref)
            except Exception as err:  # a cell that failed twice: its trials cannot train
                outcome[run.cell_id] = f"error: sampling failed: {str(err).strip().splitlines()[-1][:300]}"
                continue
            if not summary["kept"]:
                outcome[run.cell_id] = (f"error: rejection sampling kept no completion of {summary['prompts']} "
                                        "prompts (lower the threshold, or sample more)")
            _log(f"rejection sampling {run.label}: kept {summary['kept']}/{summary['prompts']} prompts "
                 f"({summary['kept_fraction']:.0%}), mean best {run.config.reward_name} {summary['mean_best_score']:.3f}, "
                 f"mean {summary['mean_score']:.3f}, {summary['samples']} samples in {summary['seconds']:.1f}s")
    for cell in cells:  # the ones done by an earlier run: say what they kept
        if cell.rejection is not None and outcome.get(cell.cell_id) == "done" and \
                cell.cell_id not in {r.cell_id for r in runs}:
            summary = read_summary(layout.stage_data(cell.cell_id))
            if not summary["kept"]:
                outcome[cell.cell_id] = "error: rejection sampling kept no completion (an earlier run's data)"
            _log(f"rejection sampling {cell.label}: already sampled, kept {summary['kept']}/{summary['prompts']}")
    return outcome


def _log(message: str) -> None:
    print(f"[ptft] {message}", flush=True)
