"""Training on Ray: one Tune trial per (cell, lr); each trial fits a `TorchTrainer` built by `torch_trainer`.

This is Ray 2.60's Train V2 pattern (docs/stack.md §4.1): a tiny Tune function trainable (the "driver")
fits a TorchTrainer whose workers run `trainers.sft.train_worker`. Each trial's Train run is named by its
trial id under `<storage>/train/`, so re-running the grid finds the run's checkpoint snapshot and the
workers resume mid-training from it; a trial whose COMPLETED marker exists is never started again.

What crosses Ray is one typed object, `TrialRun`: Tune hands it to the driver, the driver to its workers.
"""

from __future__ import annotations

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


def train_job(spec: ExperimentSpec, trial: Trial, layout: GridLayout, resolver: RevisionResolver) -> TrainJob:
    """The `TrainJob` of one trial: the checkpoint resolved to something loadable."""
    model, revision = resolver.resolve(spec.model.id, trial.checkpoint, spec.base_dir)
    return TrainJob(
        trial_id=trial.trial_id, cell_id=trial.cell_id, model=model, revision=revision,
        dataset=trial.train_dataset, fmt=trial.train_format, data_mode=trial.data_mode,
        data_source=spec.data_source(), lr=trial.lr, config=trial.config,
        output_dir=layout.trial(trial.trial_id).root,
    )


def trial_run(plan: Plan, trial: Trial, layout: GridLayout, resolver: RevisionResolver,
              wandb_settings: WandbSettings | None) -> TrialRun:
    spec = plan.spec
    job = train_job(spec, trial, layout, resolver)
    wandb_config = {
        "cell_id": trial.cell_id, "trial_id": trial.trial_id, "model": job.model, "revision": job.revision,
        "checkpoint": trial.checkpoint.label, "train_dataset": trial.train_dataset,
        "train_format": trial.train_format, "lr": trial.lr, "epochs": trial.epochs, "data_mode": trial.data_mode,
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
    resources = {"CPU": res.cpus_per_worker} | ({"GPU": res.gpus_per_worker} if res.gpus_per_worker else {})
    return TorchTrainer(
        worker_loop,
        train_loop_config={"run": run},
        scaling_config=ScalingConfig(num_workers=res.workers_per_trial, use_gpu=bool(res.gpus_per_worker),
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=run.trial_id, storage_path=run.train_root,
            failure_config=FailureConfig(max_failures=res.max_failures),
            # Keep the latest checkpoint (resume) and the best by validation loss; peers' sweeps filled disks.
            checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val_loss",
                                               checkpoint_score_order="min"),
            callbacks=callbacks or [],
        ),
    )


def trial_driver(tune_config: dict[str, Any]) -> None:
    """Tune function trainable: fit one trial's TorchTrainer (it resumes from its own snapshot)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    torch_trainer(tune_config["run"], callbacks=[TuneReportCallback()]).fit()


def _progress_callback(total: int):
    from ray.tune import Callback

    class TrialProgress(Callback):
        """One `[ptft]` line per finished trial: which, its validation loss, how many are left."""

        def __init__(self) -> None:
            self.finished = 0

        def _line(self, trial, outcome: str) -> None:
            self.finished += 1
            val = (trial.last_result or {}).get("val_loss")
            shown = f" val_loss {val:.4f}" if isinstance(val, (int, float)) else ""
            name = trial.custom_trial_name or trial.trial_id
            print(f"[ptft] trained {self.finished}/{total}: {name} {outcome}{shown}", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._line(trial, "done")

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._line(trial, "FAILED (rerun the same command to retry it)")

    return TrialProgress()


def _template_version(trial: Trial) -> str:
    from ptft import tasks

    return tasks.template_version(trial.train_dataset, trial.train_format, trial.data_mode)


def run_trials(plan: Plan, trials: list[Trial], layout: GridLayout, resolver: RevisionResolver,
               wandb_settings: WandbSettings | None, experiment_name: str) -> dict[str, str]:
    """Run `trials` as one Tune experiment; returns trial_id -> Tune status. Early-stopped trials get a marker."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    spec = plan.spec
    runs = [trial_run(plan, t, layout, resolver, wandb_settings) for t in trials]
    names = {t.trial_id: t.name for t in trials}
    scheduler = (ASHAScheduler(time_attr="step", grace_period=max(1, spec.train.log_every), reduction_factor=2)
                 if spec.train.asha else FIFOScheduler())
    tuner = tune.Tuner(
        tune.with_resources(trial_driver, {"cpu": 0.05}),
        param_space={"run": tune.grid_search(runs)},
        tune_config=tune.TuneConfig(
            metric="val_loss", mode="min", scheduler=scheduler,
            max_concurrent_trials=spec.resources.max_concurrent_trials,
            trial_name_creator=lambda t: names[t.config["run"].trial_id],
            trial_dirname_creator=lambda t: names[t.config["run"].trial_id],
        ),
        # Tune's own console tables are long for a grid; our callback prints one line per finished trial.
        run_config=tune.RunConfig(name=experiment_name, storage_path=layout.tune_root, verbose=0,
                                  callbacks=[_progress_callback(len(runs))]),
    )
    results = tuner.fit()
    statuses: dict[str, str] = {}
    for result in results:
        trial_id = result.config["run"].trial_id
        if result.error is not None:
            statuses[trial_id] = "error"
            continue
        statuses[trial_id] = "terminated"
        out = layout.trial(trial_id)
        if not storage.exists(out.completed) and result.metrics:
            # Tune stopped it early (ASHA): remember its last metrics so selection and the ledger see it.
            storage.atomic_write_json(out.early_stopped,
                                      {"val_loss": result.metrics.get("val_loss"), "metrics": result.metrics})
    return statuses
