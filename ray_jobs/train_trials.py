"""Training on Ray: one Tune trial per (cell, lr). A trial trains in one of two ways:

- **in process** (one worker per trial, the default): `trainers.sft.train_worker` runs inside the Tune
  function trainable itself, and Tune reuses that actor for the next trial, so imports, the process
  group and the allocator are paid once per actor, not once per trial. Checkpoints go to the trial's own
  folder `<storage>/train/<trial_id>/`; Tune's FailureConfig retries a failed trial, which resumes there.
- **torch_trainer** (several workers per trial): Ray 2.60's Train V2 pattern (docs/stack.md §4.1): the
  Tune trainable fits a `TorchTrainer` (built by `torch_trainer`) whose workers run `train_worker`; its
  Train run is named by the trial id under `<storage>/train/`, so a rerun finds the run's snapshot.

Either way a trial whose COMPLETED marker exists is never started again, and a rerun resumes mid-training.

What crosses Ray is one typed object, `TrialRun`: Tune hands it to the driver, the driver to its workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.core.wandb_settings import WandbSettings
from ptft.study.checkpoints import RevisionResolver
from ptft.study.plan import Plan, Trial
from ptft.study.spec import ExperimentSpec, ResourcesSpec
from ray_jobs.reporters import GridContext
from trainers.job import TrainJob


class TrialRun(BaseModel):
    """One unit of remote training work: a `TrainJob`, the resources it runs on, where Ray Train keeps its
    checkpoints, and (in a grid) the trial's bookkeeping. Ray carries it as an object, never as a dict."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    job: TrainJob
    resources: ResourcesSpec
    train_root: str  # Ray Train's storage_path; the run is named by the trial id
    grid: GridContext | None = None  # None: a bare job (no curve, no W&B), as the trainer tests run it

    @property
    def trial_id(self) -> str:
        return self.job.trial_id

    @property
    def checkpoint_root(self) -> str:
        """In process: the trial's own checkpoint folder (the torch_trainer path's Train run lives there too)."""
        return storage.join(self.train_root, self.trial_id)


def train_job(spec: ExperimentSpec, trial: Trial, layout: GridLayout, resolver: RevisionResolver) -> TrainJob:
    """The `TrainJob` of one trial: the checkpoint resolved to something loadable, in its model's family; the
    spec's declared tasks go with it (the worker registers them: it never reads the spec)."""
    if trial.parent_cell is not None:  # a recipe's later stage starts from the stage before's winner
        from ptft.grid.selection import selected_winner

        winner = selected_winner(layout, trial.parent_cell)
        if winner is None:
            raise ValueError(f"trial {trial.trial_id}: the stage before (cell {trial.parent_cell}) has no winner yet")
        model, revision = layout.trial(winner).model, None
    else:
        model, revision = spec.model_named(trial.model_name).resolve(resolver, trial.checkpoint, spec.base_dir)
    dataset, tasks, remote = trial.train_dataset, spec.tasks, {}
    if trial.rejection is not None:  # SFT on the kept set the grid sampled (ray_jobs/rejection_sampling.py)
        from evals.rejection import kept_data_task
        from ptft.tasks import register_declared

        stage_data = layout.stage_data(trial.cell_id)
        kept = kept_data_task(stage_data, trial.cell_id, trial.rejection)
        register_declared(kept)  # here too: the driver reads its template version
        dataset, tasks = kept.name, (*spec.tasks, kept)
        if storage.is_remote(stage_data):  # the workers fetch the kept set to the same local folder
            remote = {kept.source.folder: stage_data}
    return TrainJob(
        trial_id=trial.trial_id, cell_id=trial.cell_id, model=model, revision=revision,
        dataset=dataset, fmt=trial.train_format, data_mode=trial.data_mode,
        data_source=spec.data_source(), lr=trial.lr, config=trial.config, method=trial.method,
        objective=trial.objective, output_dir=layout.trial(trial.trial_id).root, tasks=tasks,
        corpora=spec.corpora, remote_folders=remote,
    )


def trial_run(plan: Plan, trial: Trial, layout: GridLayout, resolver: RevisionResolver,
              wandb_settings: WandbSettings | None) -> TrialRun:
    spec = plan.spec
    job = train_job(spec, trial, layout, resolver)
    wandb_config = {
        "cell_id": trial.cell_id, "trial_id": trial.trial_id, "base_model": spec.model_named(trial.model_name).family,
        "model": job.model,
        "revision": job.revision,
        "checkpoint": trial.checkpoint.label, "train_dataset": trial.train_dataset,
        "train_format": trial.train_format, "method": trial.method.label,
        "method_config": trial.method.model_dump(mode="json"), "lr": trial.lr, "epochs": trial.epochs,
        "data_mode": trial.data_mode,
        "data_source": spec.data.source, "template_version": _template_version(trial),
        "train": trial.config.model_dump(mode="json"),
    }
    grid = GridContext(trial=trial, storage_root=layout.root, wandb=wandb_settings, wandb_config=wandb_config)
    return TrialRun(job=job, resources=spec.resources, train_root=layout.train_root, grid=grid)


def worker_loop(config: dict[str, Any]) -> None:
    """Ray Train `train_loop_per_worker`: one trial's SFT on this worker."""
    import ray.train

    from ray_jobs.reporters import GridReporter, RayReporter
    from trainers.sft import train_worker

    run: TrialRun = config["run"]
    quiet_worker()
    if run.grid is None:
        train_worker(run.job, RayReporter())
        return
    reporter = GridReporter(RayReporter(), run.grid, ray.train.get_context().get_world_rank())
    try:
        train_worker(run.job, reporter)
    finally:
        reporter.finish()


def torch_trainer(run: TrialRun, callbacks: list[Any] | None = None) -> Any:
    """The one `TorchTrainer` builder: `run`'s workers, failure retries and checkpoint retention.

    Re-creating it with the same run (same name and storage path) resumes from the run's latest
    checkpoint (Train V2 has no `resume_from_checkpoint`).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    res = run.resources
    return TorchTrainer(
        worker_loop,
        train_loop_config={"run": run},
        scaling_config=ScalingConfig(num_workers=res.workers_per_trial, use_gpu=bool(res.gpus_per_worker),
                                     resources_per_worker=res.worker_resources()),
        run_config=RunConfig(
            name=run.trial_id, storage_path=run.train_root,
            failure_config=FailureConfig(max_failures=res.max_failures),
            # Keep the latest checkpoint (resume) and the best by validation loss; peers' sweeps filled disks.
            checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val_loss",
                                               checkpoint_score_order="min"),
            callbacks=callbacks or [],
        ),
    )


def train_in_process(run: TrialRun) -> None:
    """One-worker trial inside this process (the Tune trainable's actor), leaving nothing behind for the
    next trial the actor runs but the imports and the process group."""
    import gc

    from ray_jobs.reporters import GridReporter, TuneReporter
    from trainers.sft import release_accelerator_memory, train_worker

    reporter = TuneReporter(run.checkpoint_root, run.trial_id)
    grid_reporter = GridReporter(reporter, run.grid, rank=0) if run.grid is not None else None
    _one_process_rendezvous()
    try:
        train_worker(run.job, grid_reporter or reporter)
    finally:
        if grid_reporter is not None:
            grid_reporter.finish()
        gc.collect()
        release_accelerator_memory()


def _one_process_rendezvous() -> None:
    """Before this actor's first trial: a one-process group of its own. A Ray worker inherits the driver's
    environment, and a driver that holds a process group itself (a test session, a driver under torchrun)
    would hand every actor its RANK/WORLD_SIZE/MASTER_PORT: the actor's group would then try to listen on
    the driver's port (EADDRINUSE) or wait for ranks that never come. Later trials reuse the group."""
    import os
    import socket

    import torch.distributed as dist

    if dist.is_initialized():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))


def quiet_worker() -> None:
    """No per-load progress bars from a Ray worker (they interleave in the driver's console)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def trial_driver(tune_config: dict[str, Any], runs: dict[str, TrialRun]) -> None:
    """Tune function trainable: train one trial in this process, or fit its TorchTrainer. Tune's config
    holds only the trial id (its search space is ids); the `TrialRun` objects travel via `with_parameters`."""
    quiet_worker()
    run = runs[tune_config["trial_id"]]
    if run.resources.in_process:
        train_in_process(run)
        return
    from ray.tune.integration.ray_train import TuneReportCallback

    torch_trainer(run, callbacks=[TuneReportCallback()]).fit()


def _trial_callback(total: int, layout: GridLayout, on_trial_end: Callable[[str], None] | None,
                    on_step: Callable[[], None] | None):
    from ray.tune import Callback

    class TrialEvents(Callback):
        """One `[ptft]` line per finished trial (which, its validation loss, how many are left); marks a
        trial ASHA stopped; tells the grid a trial ended (its cell may be ready to select and evaluate)."""

        def __init__(self) -> None:
            self.finished = 0

        def _ended(self, trial, outcome: str, failed: bool) -> None:
            self.finished += 1
            result = trial.last_result or {}
            val = result.get("val_loss")
            shown = f" val_loss {val:.4f}" if isinstance(val, (int, float)) else ""
            print(f"[ptft] trained {self.finished}/{total}: {trial.custom_trial_name or trial.trial_id} "
                  f"{outcome}{shown}", flush=True)
            trial_id = trial.config["trial_id"]
            if not failed:  # a failed trial is retried by the next run, never taken as finished
                mark_early_stopped(layout, trial_id, result)
            if on_trial_end is not None:
                on_trial_end(trial_id)

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._ended(trial, "done", failed=False)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._ended(trial, "FAILED (its error is listed when the grid ends)", failed=True)

        def on_step_end(self, iteration, trials, **info) -> None:
            if on_step is not None:
                on_step()

    return TrialEvents()


def mark_early_stopped(layout: GridLayout, trial_id: str, metrics: dict[str, Any]) -> None:
    """A trial that ended with metrics but no COMPLETED marker was stopped by Tune (ASHA): remember its
    last metrics, so selection and the ledger see it as finished (it can never win)."""
    out = layout.trial(trial_id)
    if metrics and not storage.exists(out.completed) and not storage.exists(out.early_stopped):
        storage.atomic_write_json(out.early_stopped, {"val_loss": metrics.get("val_loss"), "metrics": metrics})


def _last_line(error: BaseException) -> str:
    """The line of a trial's error that says what went wrong (Ray wraps it in its own traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(error).__name__


def _template_version(trial: Trial) -> str | None:
    """The prompt template's version of an SFT trial (corpora and preference sets have no template)."""
    from ptft import tasks

    if trial.objective.kind != "sft":
        return None
    return tasks.template_version(trial.train_dataset, trial.train_format, trial.data_mode)


def run_trials(plan: Plan, trials: list[Trial], layout: GridLayout, resolver: RevisionResolver,
               wandb_settings: WandbSettings | None, experiment_name: str,
               on_trial_end: Callable[[str], None] | None = None,
               on_step: Callable[[], None] | None = None) -> dict[str, str]:
    """Run `trials` as one Tune experiment; returns trial_id -> "terminated" or "error: <its last error
    line>". `on_trial_end(trial_id)` runs in the driver as each trial ends, `on_step()` at every step of
    Tune's loop."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    spec = plan.spec
    res = spec.resources
    # Tune's new console output prints boxes and TensorBoard hints whatever `verbose` says; the classic
    # reporter honours verbose=0, and our callback prints one line per trial instead.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    runs = [trial_run(plan, t, layout, resolver, wandb_settings) for t in trials]
    names = {t.trial_id: t.name for t in trials}
    scheduler = (ASHAScheduler(time_attr="step", grace_period=max(1, spec.train.log_every), reduction_factor=2)
                 if spec.train.asha else FIFOScheduler())
    # In process the trainable holds the trial's resources; a TorchTrainer's workers hold them instead.
    driver_resources = ({kind.lower(): amount for kind, amount in res.worker_resources().items()}
                        if res.in_process else {"cpu": 0.05})
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trial_driver, runs={r.trial_id: r for r in runs}),
                            driver_resources),
        param_space={"trial_id": tune.grid_search([r.trial_id for r in runs])},
        tune_config=tune.TuneConfig(
            metric="val_loss", mode="min", scheduler=scheduler,
            max_concurrent_trials=res.max_concurrent_trials, reuse_actors=res.in_process,
            trial_name_creator=lambda t: names[t.config["trial_id"]],
            trial_dirname_creator=lambda t: names[t.config["trial_id"]],
        ),
        # Tune's own console tables are long for a grid; our callback prints one line per finished trial.
        run_config=tune.RunConfig(name=experiment_name, storage_path=layout.tune_root, verbose=0,
                                  callbacks=[_trial_callback(len(runs), layout, on_trial_end, on_step)],
                                  # In process, Tune retries a failed trial; a TorchTrainer retries its workers.
                                  failure_config=tune.FailureConfig(max_failures=res.max_failures if res.in_process else 0)),
    )
    results = tuner.fit()
    statuses: dict[str, str] = {}
    for result in results:
        trial_id = result.config["trial_id"]
        if result.error is not None:
            statuses[trial_id] = f"error: {_last_line(result.error)}"
            continue
        statuses[trial_id] = "terminated"
        mark_early_stopped(layout, trial_id, result.metrics or {})
    return statuses
