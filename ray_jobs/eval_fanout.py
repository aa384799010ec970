"""Evaluation fan-out: one Ray task per model; it loads the model once and runs all of its eval jobs.

Every base checkpoint is evaluated once per grid (its jobs are shared by all its cells); fine-tuned
models are the cells' winners (or every trial with `eval.models: all`). A job whose record exists is
skipped by the evaluator itself, so a rerun never writes a result twice. What crosses Ray is one typed
object per model, `EvalRun`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evals.config import EvalConfig
from evals.harness import HarnessConfig
from evals.jobs import EvalJob, ModelRef
from ptft.core.layout import GridLayout
from ptft.core.wandb_settings import WandbSettings
from ptft.grid.ledger import GridState, eval_model_key
from ptft.grid.selection import selected_winner
from ptft.study.checkpoints import RevisionResolver
from ptft.study.plan import Plan
from ptft.tasks.declared import TaskDeclaration, register_declared
from ray_jobs.wandb_runs import BASE_GROUP, cell_group, eval_run_name, finish_run, init_run, run_id, run_tags


@dataclass(frozen=True)
class EvalRun:
    """One unit of remote eval work: a model, the jobs it still owes, and how and where to score them."""

    key: str  # its folder under evals/
    model: ModelRef
    jobs: tuple[EvalJob, ...]
    group: str  # W&B group: the cell id, or "base"
    config: EvalConfig
    out_dir: str
    data_source: str
    wandb: WandbSettings | None
    tasks: tuple[TaskDeclaration, ...] = ()  # the spec's declared tasks: the worker registers them first
    harness: HarnessConfig | None = None  # lm-eval tasks run on this model too (evals/harness.py)


@dataclass(frozen=True)
class EvalSummary:
    key: str
    records: int
    seconds: float


def pending_work(plan: Plan, state: GridState, layout: GridLayout, resolver: RevisionResolver,
                 wandb_settings: WandbSettings | None = None) -> list[EvalRun]:
    """The models that still have ready-but-not-done eval jobs, each with those jobs."""
    spec = plan.spec
    jobs_by_key: dict[str, list[EvalJob]] = {}
    models: dict[str, tuple[ModelRef, str]] = {}
    trials = {t.trial_id: t for t in plan.trials}
    checkpoints = {(spec.model_name_of(m), ref.label): (m, ref)
                   for m in spec.model_specs() for ref in m.checkpoint_refs()}
    for planned in plan.eval_jobs:
        if state.evals[planned.job_id] != "ready":
            continue
        key = eval_model_key(planned, state.winners)
        assert key is not None
        if key not in models:
            base, ref = checkpoints[(planned.model_name, planned.checkpoint)]
            path, revision = base.resolve(resolver, ref, spec.base_dir)
            # tokens seen by the base checkpoint: the x axis two families share (docs/families.md)
            pretrained = dict(base_model=base.family, checkpoint=ref.label, checkpoint_step=ref.step,
                              checkpoint_tokens=base.tokens_seen(resolver, ref, revision))
            if planned.model_kind == "base":
                model = ModelRef.of(path, revision, **pretrained)
                models[key] = (model, BASE_GROUP)
            else:
                trial = trials[planned.trial_id or state.winners[planned.cell_id or ""]]
                output = layout.trial(trial.trial_id)
                identity = dict(model_kind="finetuned", **pretrained, train_dataset=trial.train_dataset,
                                train_format=trial.train_format, lr=trial.lr, trial_id=trial.trial_id,
                                epochs=trial.epochs, method=trial.method.label, objective=trial.stage_kind,
                                prior_stages=trial.prior_stages)
                if trial.method.mergeable:  # full, or LoRA merged: a plain model folder
                    model = ModelRef.of(output.model, **identity)
                else:  # prompt methods: the model the trial started from, with the trial's adapter
                    if trial.parent_cell is not None:  # a recipe's stage: the stage before's winner
                        path, revision = layout.trial(selected_winner(layout, trial.parent_cell) or "").model, None
                    model = ModelRef.of(path, revision, adapter=output.adapter, **identity)
                models[key] = (model, cell_group(trial))
        jobs_by_key.setdefault(key, []).append(planned.job)
    config, data_source = spec.eval.eval_config(), spec.data_source()
    return [EvalRun(key, model, tuple(jobs_by_key[key]), group, config, layout.evals(key).root, data_source,
                    wandb_settings, spec.tasks, harness=spec.eval.harness_config()) for key, (model, group) in models.items()]


def evaluate_one_model(run: EvalRun) -> EvalSummary:
    """Body of the Ray task: score one model's jobs, log one W&B eval run, return a summary."""
    from evals.harness import merge_results, run_harness
    from evals.runner import evaluate_model
    from ptft.core.layout import EvalOutput
    from ray_jobs.train_trials import quiet_worker

    quiet_worker()
    for declaration in run.tasks:  # a Ray worker never read the spec: its declared tasks come with the run
        register_declared(declaration)
    start = time.perf_counter()
    # The harness goes first: the ledger knows a model is done from ptft's records alone, so those are
    # written only once the harness's marker is; a rerun after a crash in between redoes what is missing.
    harness = run_harness(run.model, run.harness, run.out_dir) if run.harness is not None else []
    records = evaluate_model(run.model, list(run.jobs), run.config, run.out_dir, data_source=run.data_source,
                             progress=False)
    if run.harness is not None:  # evaluate_model rewrote results.jsonl from ptft's records: add them back
        merge_results(EvalOutput(run.out_dir), harness)
    records = [*records, *harness]
    seconds = time.perf_counter() - start
    wandb_run = init_run(run.wandb, run_id=run_id("eval", run.key, *sorted(j.job_id or "" for j in run.jobs)),
                         name=eval_run_name(run.model.identity), group=run.group, job_type="eval",
                         tags=run_tags(run.model.identity, "eval", f"model:{run.model.identity.model_kind}",
                                       *sorted({f"eval:{j.dataset}" for j in run.jobs})),
                         config={"model_key": run.key, "revision": run.model.revision,
                                 **dataclasses.asdict(run.model.identity)})
    if wandb_run is not None:
        import wandb

        rows = [r.to_dict() for r in records]
        columns = ["eval_dataset", "eval_format", "shots", "mode", "metric", "value", "std", "n"]
        wandb_run.log({"results": wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])})
        wandb_run.summary.update({f"{r.eval_dataset}/{r.eval_format}/{r.shots}shot/{r.metric}": r.value
                                  for r in records})
        for record in records:  # a bounded look at what the model answered, per job
            table = sample_table(record)
            if table is not None:
                wandb_run.log({f"samples/{record.eval_dataset}/{record.eval_format}/{record.shots}shot": table})
    finish_run(wandb_run)
    return EvalSummary(run.key, len(records), seconds)


SAMPLE_ROWS = 20  # per eval job: the first examples' predictions (the full files stay in storage)


def sample_table(record):
    """A W&B table of the first `SAMPLE_ROWS` per-example predictions of a ptft record (None without them)."""
    import json

    import wandb

    from ptft.core import storage

    if record.source != "ptft" or not record.predictions or not storage.exists(record.predictions):
        return None
    rows = []
    for line in storage.read_text(record.predictions).splitlines()[:SAMPLE_ROWS]:
        row = json.loads(line)
        rows.append({k: v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v)
                     for k, v in row.items()})
    if not rows:
        return None
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])


class EvalQueue:
    """The grid's evaluations as Ray tasks, at most `max_concurrent_evals` at once, fed while training runs:
    base checkpoints at once, each cell's winner as soon as its cell is selected. The driver calls `add`
    with what became ready and `poll` from Tune's loop; `drain` waits for the rest."""

    def __init__(self, plan: Plan, on_done: Callable[[EvalSummary], None] | None = None):
        import ray

        res = plan.spec.resources
        self.limit = res.max_concurrent_evals
        self.task = ray.remote(evaluate_one_model).options(
            num_cpus=res.eval_cpus_per_worker, num_gpus=res.eval_gpus_per_worker, max_retries=1)
        self.on_done = on_done
        self.queued: list[EvalRun] = []
        self.running: dict[Any, EvalRun] = {}
        self.seen: set[str] = set()
        self.done: list[EvalSummary] = []
        self.jobs_added = 0

    def add(self, work: list[EvalRun]) -> None:
        """Queue the models not queued before (a model's jobs are all known once it is ready)."""
        for run in work:
            if run.key not in self.seen:
                self.seen.add(run.key)
                self.queued.append(run)
                self.jobs_added += len(run.jobs)
        self.poll()

    def poll(self, timeout: float = 0.0) -> None:
        """Collect finished tasks (waiting up to `timeout` for one) and start queued ones in their place."""
        import ray

        while self.queued and len(self.running) < self.limit:
            run = self.queued.pop(0)
            self.running[self.task.remote(run)] = run
        if not self.running:
            return
        finished, _ = ray.wait(list(self.running), num_returns=1, timeout=timeout)
        for ref in finished:
            self.running.pop(ref)
            summary = ray.get(ref)  # an evaluation that failed twice raises here, naming its model
            self.done.append(summary)
            if self.on_done:
                self.on_done(summary)
        if finished:
            self.poll()

    def drain(self, on_wait: Callable[[], None] | None = None, wake_every_s: float = 15.0) -> list[EvalSummary]:
        """Wait for every queued and running evaluation; `on_wait` runs at least every `wake_every_s`."""
        while self.queued or self.running:
            self.poll(timeout=wake_every_s)
            if on_wait is not None:
                on_wait()
        return self.done
