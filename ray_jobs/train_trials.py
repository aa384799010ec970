"""Training on Ray: one Tune trial per (cell, lr); each trial builds and fits a `TorchTrainer`.

This is Ray 2.60's Train V2 pattern (STACK.md §4.1): a tiny Tune function trainable (the "driver")
fits a TorchTrainer whose workers run `trainers.sft.train_worker`. Each trial's Train run is named by its
trial id under `<storage>/train/`, so re-running the grid finds the run's checkpoint snapshot and the
workers resume mid-training from it; a trial whose COMPLETED marker exists is never started again.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.grid.selection import curve_file
from ptft.study.checkpoints import RevisionResolver
from ptft.study.plan import Plan, Trial
from ray_jobs.wandb_runs import WandbSettings, init_run, run_id

# A crash injected into one trial for resume tests: "<trial_id>:<step>" (once; a marker remembers it).
INJECT_CRASH_ENV = "PTFT_INJECT_CRASH"


def build_train_job(plan: Plan, trial: Trial, layout: GridLayout, resolver: RevisionResolver) -> dict[str, Any]:
    """The `TrainJob` (as JSON) of one trial: the checkpoint resolved to something loadable."""
    from trainers.job import TrainJob

    spec = plan.spec
    cell = next(c for c in plan.cells if c.cell_id == trial.cell_id)
    entry = next(d for d in spec.train.datasets if d.name == trial.train_dataset)
    model, revision = resolver.resolve(spec.model.id, cell.checkpoint, spec.base_dir)
    job = TrainJob(
        trial_id=trial.trial_id, cell_id=trial.cell_id, model=model, revision=revision,
        dataset=trial.train_dataset, fmt=trial.train_format, data_mode=spec.train.mode,
        data_source=spec.data_source(), lr=trial.lr,
        config=spec.train.train_config(epochs=spec.train.epochs_for(entry)),
        output_dir=layout.trial(trial.trial_id).root,
    )
    return job.model_dump(mode="json")


class GridReporter:
    """Wraps the trainer's Ray reporter: records the trial's curve, logs W&B, and injects test crashes."""

    def __init__(self, inner: Any, layout: GridLayout, trial: dict[str, Any], wandb_settings: dict | None,
                 rank: int):
        self.inner, self.layout, self.trial, self.rank = inner, layout, trial, rank
        self.curve_path = curve_file(layout, trial["trial_id"])
        self.curve: list[dict[str, Any]] = storage.read_json(self.curve_path) if (
            rank == 0 and storage.exists(self.curve_path)) else []
        self.last_val_loss: float | None = None
        self.resumed = False
        self.run = None
        if rank == 0:
            self.run = init_run(
                wandb_settings, run_id=run_id("train", trial["trial_id"]), name=trial["name"],
                group=trial["cell_id"], job_type="train", config=trial["wandb_config"],
            )
        inject = os.environ.get(INJECT_CRASH_ENV, "")
        target, _, step = inject.partition(":")
        self.crash_at = int(step) if target == trial["trial_id"] and step.isdigit() else None

    @contextlib.contextmanager
    def resume_dir(self) -> Iterator[str | None]:
        with self.inner.resume_dir() as directory:
            self.resumed = directory is not None
            yield directory

    def checkpoint_dir(self) -> contextlib.AbstractContextManager[str]:
        return self.inner.checkpoint_dir()

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        metrics = dict(metrics)
        if isinstance(metrics.get("val_loss"), (int, float)):
            self.last_val_loss = metrics["val_loss"]
        elif checkpoint_dir is not None:
            # Ray keeps the best checkpoint by val_loss; one reported without it carries the last known.
            metrics["val_loss"] = self.last_val_loss if self.last_val_loss is not None else math.inf
        if self.rank == 0:
            step = metrics.get("step")
            if self.resumed:  # first report after a resume: remember where training picked up
                self.resumed = False
                path = storage.join(self.layout.trial(self.trial["trial_id"]).root, "resumes.json")
                history = storage.read_json(path) if storage.exists(path) else []
                storage.atomic_write_json(path, history + [{"first_step_after_resume": step}])
            self.curve = [p for p in self.curve if p.get("step") != step] + [metrics]
            storage.atomic_write_json(self.curve_path, self.curve)
            if self.run is not None:
                self.run.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)
        self.inner.report(metrics, checkpoint_dir=checkpoint_dir)
        if self.crash_at is not None and checkpoint_dir is not None and metrics.get("step", 0) >= self.crash_at:
            marker = self.layout.fault_marker(self.trial["trial_id"])
            if not storage.exists(marker):
                storage.atomic_write_text(marker, "crashed once on purpose\n")
                raise RuntimeError(f"injected crash in trial {self.trial['trial_id']} at step {metrics['step']}")

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()


def worker_loop(config: dict[str, Any]) -> None:
    """Ray Train `train_loop_per_worker`: one trial's SFT on this worker."""
    import ray.train

    from trainers.job import TrainJob
    from trainers.ray_adapter import RayReporter
    from trainers.sft import train_worker

    job = TrainJob.model_validate(config["job"])
    rank = ray.train.get_context().get_world_rank()
    reporter = GridReporter(RayReporter(), GridLayout(config["storage_root"]), config["trial"],
                            config.get("wandb"), rank)
    try:
        train_worker(job, reporter)
    finally:
        reporter.finish()


def trial_driver(tune_config: dict[str, Any]) -> None:
    """Tune function trainable: fit one trial's TorchTrainer (it resumes from its own snapshot)."""
    config = tune_config["cfg"]
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    res = config["resources"]
    resources = {"CPU": res["cpus_per_worker"]}
    if res["gpus_per_worker"]:
        resources["GPU"] = res["gpus_per_worker"]
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=res["workers_per_trial"], use_gpu=bool(res["gpus_per_worker"]),
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=config["job"]["trial_id"], storage_path=config["train_root"],
            failure_config=FailureConfig(max_failures=res["max_failures"]),
            # Keep the latest checkpoint (resume) and the best by validation loss; peers' sweeps filled disks.
            checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val_loss",
                                               checkpoint_score_order="min"),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()


def trial_config(plan: Plan, trial: Trial, layout: GridLayout, resolver: RevisionResolver,
                 wandb_settings: WandbSettings | None) -> dict[str, Any]:
    spec = plan.spec
    job = build_train_job(plan, trial, layout, resolver)
    wandb_config = {
        "cell_id": trial.cell_id, "trial_id": trial.trial_id, "model": spec.model.id,
        "checkpoint": trial.checkpoint, "train_dataset": trial.train_dataset, "train_format": trial.train_format,
        "lr": trial.lr, "epochs": trial.epochs, "data_mode": spec.train.mode, "data_source": spec.data.source,
        "template_version": _template_version(trial, spec.train.mode), "train": job["config"],
    }
    return {
        "job": job,
        "trial": trial.to_json() | {"wandb_config": wandb_config},
        "storage_root": layout.root,
        "train_root": layout.train_root,
        "resources": spec.resources.model_dump(),
        "wandb": wandb_settings.to_dict() if wandb_settings else None,
    }


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


def _template_version(trial: Trial, mode: str) -> str:
    from ptft import tasks

    return tasks.template_version(trial.train_dataset, trial.train_format, mode)


def run_trials(plan: Plan, trials: list[Trial], layout: GridLayout, resolver: RevisionResolver,
               wandb_settings: WandbSettings | None, experiment_name: str) -> dict[str, str]:
    """Run `trials` as one Tune experiment; returns trial_id -> Tune status. Early-stopped trials get a marker."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    spec = plan.spec
    configs = [trial_config(plan, t, layout, resolver, wandb_settings) for t in trials]
    names = {c["job"]["trial_id"]: c["trial"]["name"] for c in configs}
    scheduler = (ASHAScheduler(time_attr="step", grace_period=max(1, spec.train.log_every), reduction_factor=2)
                 if spec.train.asha else FIFOScheduler())
    tuner = tune.Tuner(
        tune.with_resources(trial_driver, {"cpu": 0.05}),
        param_space={"cfg": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(
            metric="val_loss", mode="min", scheduler=scheduler,
            max_concurrent_trials=spec.resources.max_concurrent_trials,
            trial_name_creator=lambda t: names[t.config["cfg"]["job"]["trial_id"]],
            trial_dirname_creator=lambda t: names[t.config["cfg"]["job"]["trial_id"]],
        ),
        # Tune's own console tables are long for a grid; our callback prints one line per finished trial.
        run_config=tune.RunConfig(name=experiment_name, storage_path=layout.tune_root, verbose=0,
                                  callbacks=[_progress_callback(len(configs))]),
    )
    results = tuner.fit()
    statuses: dict[str, str] = {}
    for result in results:
        trial_id = result.config["cfg"]["job"]["trial_id"]
        if result.error is not None:
            statuses[trial_id] = "error"
            continue
        statuses[trial_id] = "terminated"
        if not storage.exists(layout.trial(trial_id).completed) and result.metrics:
            # Tune stopped it early (ASHA): remember its last metrics so selection and the ledger see it.
            storage.atomic_write_json(layout.trial(trial_id).early_stopped,
                                      {"val_loss": result.metrics.get("val_loss"), "metrics": result.metrics})
    return statuses


