"""Evaluation fan-out: one Ray task per model; it loads the model once and runs all of its eval jobs.

Every base checkpoint is evaluated once per grid (its jobs are shared by all its cells); fine-tuned
models are the cells' winners (or every trial with `eval.models: all`). A job whose record exists is
skipped by the evaluator itself, so a rerun never writes a result twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evals.jobs import EvalJob as EngineJob
from evals.jobs import ModelRef
from ptft.core.layout import GridLayout
from ptft.grid.ledger import GridState, eval_model_key
from ptft.study.checkpoints import RevisionResolver
from ptft.study.plan import EvalJob, Plan
from ray_jobs.wandb_runs import WandbSettings, init_run, run_id


@dataclass
class ModelWork:
    key: str  # folder under evals/
    model: ModelRef
    jobs: list[EngineJob]
    group: str  # W&B group: the cell id, or "base"


def pending_work(plan: Plan, state: GridState, layout: GridLayout, resolver: RevisionResolver) -> list[ModelWork]:
    """The models that still have ready-but-not-done eval jobs, each with those jobs."""
    spec = plan.spec
    by_key: dict[str, ModelWork] = {}
    trials = {t.trial_id: t for t in plan.trials}
    checkpoints = {ref.label: ref for ref in spec.model.checkpoint_refs()}
    for job in plan.eval_jobs:
        if state.evals[job.job_id] != "ready":
            continue
        key = eval_model_key(job, state.winners)
        assert key is not None
        if key not in by_key:
            ref = checkpoints[job.checkpoint]
            if job.model_kind == "base":
                path, revision = resolver.resolve(spec.model.id, ref, spec.base_dir)
                model = ModelRef(path_or_id=path, revision=revision, model_kind="base", base_model=spec.model.id,
                                 checkpoint=ref.label, checkpoint_step=ref.step)
                group = "base"
            else:
                trial = trials[job.trial_id or state.winners[job.cell_id or ""]]
                model = ModelRef(path_or_id=layout.trial(trial.trial_id).model, model_kind="finetuned",
                                 base_model=spec.model.id, checkpoint=ref.label, checkpoint_step=ref.step,
                                 train_dataset=trial.train_dataset, train_format=trial.train_format, lr=trial.lr,
                                 trial_id=trial.trial_id, epochs=trial.epochs)
                group = trial.cell_id
            by_key[key] = ModelWork(key, model, [], group)
        by_key[key].jobs.append(_engine_job(job))
    return list(by_key.values())


def _engine_job(job: EvalJob) -> EngineJob:
    return EngineJob(dataset=job.eval_dataset, fmt=job.eval_format, shots=job.shots, mode=job.mode,
                     job_id=job.job_id)


def evaluate_one_model(work: ModelWork, eval_config: dict[str, Any], out_dir: str, data_source: str,
                       wandb_settings: dict[str, Any] | None) -> dict[str, Any]:
    """Body of the Ray task: score one model's jobs, log one W&B eval run, return a summary."""
    from evals.config import EvalConfig
    from evals.runner import evaluate_model

    start = time.perf_counter()
    records = evaluate_model(work.model, work.jobs, EvalConfig(**eval_config), out_dir,
                             data_source=data_source, progress=False)
    seconds = time.perf_counter() - start
    run = init_run(wandb_settings, run_id=run_id("eval", work.key, *sorted(j.job_id or "" for j in work.jobs)),
                   name=f"eval-{work.key}", group=work.group, job_type="eval",
                   config={"model_key": work.key, **_identity(work.model)})
    if run is not None:
        import wandb

        rows = [r.to_dict() for r in records]
        columns = ["eval_dataset", "eval_format", "shots", "mode", "metric", "value", "std", "n"]
        run.log({"results": wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])})
        run.summary.update({f"{r.eval_dataset}/{r.eval_format}/{r.shots}shot/{r.metric}": r.value for r in records})
        run.finish()
    return {"key": work.key, "records": len(records), "seconds": seconds}


def _identity(model: ModelRef) -> dict[str, Any]:
    fields = ("model_kind", "base_model", "checkpoint", "checkpoint_step", "train_dataset", "train_format",
              "lr", "trial_id", "epochs", "revision")
    return {f: getattr(model, f) for f in fields}


def run_evals(plan: Plan, work: list[ModelWork], layout: GridLayout, wandb_settings: WandbSettings | None,
              on_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Fan `work` out as Ray tasks, at most `max_concurrent_evals` at a time."""
    import ray

    spec = plan.spec
    res = spec.resources
    task = ray.remote(evaluate_one_model).options(
        num_cpus=res.eval_cpus_per_worker, num_gpus=res.eval_gpus_per_worker, max_retries=1,
    )
    eval_config = spec.eval.eval_config().model_dump()
    settings = wandb_settings.to_dict() if wandb_settings else None
    queue = list(work)
    running: list[Any] = []
    done: list[dict[str, Any]] = []
    while queue or running:
        while queue and len(running) < res.max_concurrent_evals:
            item = queue.pop(0)
            running.append(task.remote(item, eval_config, layout.evals(item.key).root, spec.data_source(), settings))
        finished, running = ray.wait(running, num_returns=1)
        summary = ray.get(finished[0])
        done.append(summary)
        if on_done:
            on_done(summary)
    return done
