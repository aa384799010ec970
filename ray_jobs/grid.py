"""The grid on Ray: `run_grid(plan)` (the `ptft run CONFIG` command, which users give `ray job submit`).

It reads like the study: plan -> train -> select -> evaluate -> analyze, with evaluation running beside
training as models become ready. Every stage starts from the ledger (storage markers), so re-running the same
command after a crash or a stop continues where it stopped and recomputes nothing that finished.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.grid.lease import GridLease
from ptft.grid.ledger import check_plan_version, read_state
from ptft.study.checkpoints import RevisionResolver
from ptft.study.plan import Plan
from ptft.study.preflight import preflight
from ray_jobs.console import GridLogs, TrialPhase, library_logs_to
from ray_jobs.wandb_runs import log_selection, settings_for


@dataclass
class GridReport:
    trials_run: int = 0
    trials_failed: list[str] = field(default_factory=list)
    trial_errors: dict[str, str] = field(default_factory=dict)  # trial_id -> its error's last line
    cells_selected: int = 0
    eval_models_run: int = 0
    eval_jobs_run: int = 0
    eval_seconds: dict[str, float] = field(default_factory=dict)  # model key -> its evaluation's own time
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time
    analysis_dir: str | None = None
    logs_dir: str | None = None  # this run's library and worker output (None: --verbose, it was on the console)

    @property
    def ok(self) -> bool:
        return not self.trials_failed

    def failure_message(self) -> str:
        causes = "".join(f"\n  {t}: {self.trial_errors.get(t, 'no COMPLETED marker')}" for t in self.trials_failed)
        return (f"error: {len(self.trials_failed)} trial(s) failed:{causes}\nIf the cause was passing (a lost "
                "node, a preemption), re-run the same command: finished work is skipped and these trials resume "
                "from their checkpoints. Otherwise fix the cause first."
                + (f"\nTheir full output: {self.logs_dir}" if self.logs_dir else ""))


def connect_ray(logs: GridLogs | None = None) -> bool:
    """Join the cluster Ray gives us (RAY_ADDRESS, or the job's own context) or start a local Ray;
    returns True when this process started it (a local Ray of fixed size).

    With `logs`, workers' output is not streamed to this console: a local Ray's workers write it into
    `logs` (`ray_jobs/console.py`), a joined cluster's keep it in Ray's own logs."""
    import os

    import ray

    if ray.is_initialized():
        return False
    local = not os.environ.get("RAY_ADDRESS")
    # Inside `ray job submit`, RAY_ADDRESS is set and ray.init() joins that cluster. On its own it starts a
    # local Ray with the dashboard on: Train V2 needs the state API to release finished trials' resources.
    options: dict = {"log_to_driver": logs is None, "configure_logging": False}
    if logs is not None and local:
        options["runtime_env"] = logs.worker_runtime_env()
    try:
        ray.init(**options)
    except Exception as err:  # a local node can time out starting on a loaded machine: try once more
        _log(f"ray.init failed ({type(err).__name__}: {err}); retrying once")
        ray.shutdown()
        ray.init(**options)
    return local


class ResourcesError(ValueError):
    """A trial or an evaluation asks for more than the cluster can ever give it."""


def check_resources(plan: Plan, fixed_size: bool) -> None:
    """A trial (or an evaluation) that needs more CPUs or GPUs than the cluster has would wait forever.
    On a Ray this process started (a fixed size) that is an error; on a cluster it joined, an autoscaler
    may still add the node, so it is said and the grid goes on."""
    import ray

    res = plan.spec.resources
    have = ray.cluster_resources()
    needs = {
        "a trial": {"CPU": res.cpus_per_worker * res.workers_per_trial, "GPU": res.gpus_per_worker * res.workers_per_trial},
        "an evaluation": {"CPU": res.eval_cpus_per_worker, "GPU": res.eval_gpus_per_worker},
    }
    short = [f"{what} needs {amount:g} {kind} (resources.{_field(what, kind)}), the cluster has {have.get(kind, 0):g}"
             for what, need in needs.items() for kind, amount in need.items() if amount > have.get(kind, 0)]
    if not short:
        return
    message = "; ".join(short)
    if fixed_size:
        raise ResourcesError(f"{message}: lower it in the spec's resources section")
    _log(f"warning: {message}; waiting for the autoscaler to add such a node (if it never can, lower it)")


def check_cluster(plan: Plan) -> None:
    """`check_resources` against the cluster Ray gives us (or a local Ray started for the check, and stopped)."""
    import ray

    started = connect_ray()
    try:
        check_resources(plan, fixed_size=started)
    finally:
        if started:
            ray.shutdown()


def _field(what: str, kind: str) -> str:
    prefix = "" if what == "a trial" else "eval_"
    return f"{prefix}{'cpus' if kind == 'CPU' else 'gpus'}_per_worker"


def _log(message: str) -> None:
    print(f"[ptft] {message}", flush=True)


def resolve_checkpoints(plan: Plan, resolver: RevisionResolver) -> None:
    """Resolve every checkpoint before any resource is asked for: a missing step fails here."""
    for model in plan.spec.model_specs():
        for ref in model.checkpoint_refs():
            model.resolve(resolver, ref, plan.spec.base_dir)


def run_grid(plan: Plan, resolver: RevisionResolver | None = None, verbose: bool = False) -> GridReport:
    """Train, select, evaluate and analyze whatever the ledger says is not done yet.

    Everything that can be checked is checked before Ray is asked for anything; one driver at a time
    holds the grid (its lease in storage). Evaluation overlaps training: base checkpoints are queued at
    once, and each cell's winner as soon as the cell's last trial ends; Ray shares the resources between
    them. The analysis runs once at the end. Library output goes to `<storage>/logs/<run>/` unless
    `verbose` (then Ray streams it to this console).
    """
    spec = plan.spec
    layout = GridLayout(spec.storage_root())
    resolver = resolver or RevisionResolver(families=spec.checkpoint_families())
    preflight(plan)  # checkpoint folders, a writable storage, every split the plan reads: before Ray
    resolve_checkpoints(plan, resolver)
    check_plan_version(layout)
    wandb_settings = settings_for(spec, layout.root)
    storage.makedirs(layout.root)
    with GridLease(layout) as lease:
        for note in lease.notes:
            _log(note)
        storage.atomic_write_json(layout.plan_file, plan.to_json())
        logs = None if verbose else GridLogs.for_run(layout.root, spec.name)
        with library_logs_to(logs.driver_log if logs else None):
            started = connect_ray(logs)
            if logs is not None:  # workers of a Ray this process did not start keep their output in Ray's logs
                where = "" if started else " (this driver's; workers' stay in Ray's logs: dashboard, `ray logs`)"
                _log(f"library output: {logs.root}{where}; --verbose shows it here")
            check_resources(plan, fixed_size=started)
            report = _run_stages(plan, layout, resolver, wandb_settings, lease)
        report.logs_dir = logs.root if logs else None
        return report


def _run_stages(plan: Plan, layout: GridLayout, resolver: RevisionResolver, wandb_settings,
                lease: GridLease) -> GridReport:
    from ptft.grid.selection import run_selection, select_and_record, selected_winner
    from ray_jobs.eval_fanout import EvalQueue, pending_work
    from ray_jobs.train_trials import run_trials

    spec = plan.spec
    report = GridReport()
    start = time.perf_counter()

    def evaluated(summary) -> None:
        report.eval_seconds[summary.key] = summary.seconds
        _log(f"evaluated {summary.key}: {summary.records} records in {summary.seconds:.1f}s")

    evals = EvalQueue(plan, on_done=evaluated)
    verified: set[str] = set()  # markers verified in this run (read_state runs after every trial)

    def queue_ready_evals() -> None:
        evals.add(pending_work(plan, read_state(plan, layout, verified), layout, resolver, wandb_settings))

    phase: TrialPhase | None = None

    def tick() -> None:  # every step of Tune's loop and of the wait for evaluations
        lease.beat()
        evals.poll()
        line = phase.heartbeat() if phase is not None else None
        if line:
            _log(line)

    # Evaluate what needs no training now (base checkpoints, winners selected by an earlier run).
    state = read_state(plan, layout, verified)
    for problem in state.problems:
        _log(f"not trusting a marker, redoing its work: {problem}")
    done_jobs = sum(1 for s in state.evals.values() if s == "done")
    todo = [t for t in plan.trials if state.trials[t.trial_id] in ("pending", "started", "invalid")]
    _log(f"already done: {len(plan.trials) - len(todo)}/{len(plan.trials)} trials, {done_jobs}/"
         f"{len(plan.eval_jobs)} eval jobs; training {len(todo)} trials")
    queue_ready_evals()

    # Train: every trial without a COMPLETED marker (started ones resume from their checkpoints).
    logged_cells: set[str] = set()  # cells whose selection went to W&B in this run

    def selected(cell_id: str, record: dict) -> None:
        if cell_id not in logged_cells:
            logged_cells.add(cell_id)
            winner = layout.trial(record["winner"]["trial_id"])
            model_dir = winner.model if storage.exists(winner.model) else winner.adapter  # prompt methods: an adapter
            log_selection(wandb_settings, plan, plan.cell(cell_id), record, model_dir=model_dir)

    if todo:
        phase = TrialPhase(len(todo))

        def trial_ended(trial_id: str) -> None:  # select its cell once all the cell's trials are finished
            _log(phase.trial_ended(trial_seconds(layout, trial_id)))
            cell = plan.cell(next(t.cell_id for t in plan.trials if t.trial_id == trial_id))
            record = select_and_record(plan, cell, layout)
            if record is not None:
                selected(cell.cell_id, record)
                queue_ready_evals()

        statuses: dict[str, str] = {}
        # Recipes train in waves, one per stage depth: a stage starts from the winners of the stage before
        # (docs/recipes.md). A plain grid is one wave.
        for stage in sorted({t.stage for t in todo}):
            wave = [t for t in todo if t.stage == stage]
            if stage > 1:
                run_selection(plan, layout)
                blocked = [t for t in wave if selected_winner(layout, t.parent_cell or "") is None]
                for t in blocked:
                    statuses[t.trial_id] = (f"error: the stage before (cell {plan.cell(t.parent_cell or '').label}) "
                                            "has no winner")
                wave = [t for t in wave if t not in blocked]
                _log(f"stage {stage}: training {len(wave)} trials from the winners of stage {stage - 1}"
                     + (f" ({len(blocked)} wait for a stage that failed)" if blocked else ""))
            wave = _sample_rejection_cells(plan, wave, layout, resolver, wandb_settings, statuses, lease)
            if wave:
                statuses.update(run_trials(plan, wave, layout, resolver, wandb_settings,
                                           experiment_name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-s{stage}",
                                           on_trial_end=trial_ended, on_step=tick))
        report.trials_run = len(todo)
        report.trial_errors = {t: s.removeprefix("error: ") for t, s in statuses.items() if s.startswith("error")}
        report.trials_failed = sorted(t for t, s in statuses.items() if s.startswith("error")
                                      or not (storage.exists(layout.trial(t).completed)
                                              or storage.exists(layout.trial(t).early_stopped)))
    report.seconds["train"] = time.perf_counter() - start

    # Select every cell whose trials are finished (a rerun, or cells the callbacks did not see), evaluate
    # the rest, and wait for every evaluation.
    selections = run_selection(plan, layout)
    report.cells_selected = len(selections)
    trained = {t.cell_id for t in todo}
    for cell_id, record in selections.items():  # cells this run trained that no callback saw finish
        if cell_id in trained:
            selected(cell_id, record)
    _log(f"{report.cells_selected}/{len(plan.cells)} cells selected")
    queue_ready_evals()
    tail = time.perf_counter()
    evals.drain(on_wait=lease.beat)
    report.eval_models_run, report.eval_jobs_run = len(evals.done), evals.jobs_added
    report.seconds["eval_after_train"] = time.perf_counter() - tail

    # Analyze: the matrices from every result record under storage.
    start = time.perf_counter()
    report.analysis_dir = analyze(plan, layout, wandb_settings)
    report.seconds["analyze"] = time.perf_counter() - start
    return report


def _sample_rejection_cells(plan: Plan, wave: list, layout: GridLayout, resolver: RevisionResolver, wandb_settings,
                            statuses: dict[str, str], lease: GridLease) -> list:
    """Before a wave trains: the kept sets of its rejection_sampling cells (ray_jobs/rejection_sampling.py);
    the trials of a cell whose sampling failed get its error and leave the wave."""
    cells = [plan.cell(c) for c in dict.fromkeys(t.cell_id for t in wave if t.rejection is not None)]
    if not cells:
        return wave
    from ray_jobs.rejection_sampling import run_rejection_sampling

    outcome = run_rejection_sampling(plan, cells, layout, resolver, wandb_settings, on_wait=lease.beat)
    failed = {cell_id: why for cell_id, why in outcome.items() if why.startswith("error")}
    for t in wave:
        if t.cell_id in failed:
            statuses[t.trial_id] = failed[t.cell_id]
    return [t for t in wave if t.cell_id not in failed]


def trial_seconds(layout: GridLayout, trial_id: str) -> float | None:
    """A trial's own wall time in this run (model loading included), from the last point of its curve."""
    path = layout.trial(trial_id).curve
    try:
        curve = storage.read_json(path) if storage.exists(path) else []
    except ValueError:  # a curve being rewritten: the duration is only for the console
        return None
    seconds = curve[-1].get("trial_seconds") if curve else None
    return float(seconds) if isinstance(seconds, (int, float)) else None


def analyze(plan: Plan, layout: GridLayout, wandb_settings) -> str | None:
    """Write the matrices and report under `<storage>/analysis` and log a W&B summary run."""
    import yaml

    from evals.analysis.pipeline import AnalyzeConfig, WandbOptions, run_analysis
    from ray_jobs.wandb_runs import run_id

    wandb = WandbOptions()
    if wandb_settings is not None and wandb_settings.enabled:
        wandb = WandbOptions(project=wandb_settings.project, entity=wandb_settings.entity,
                             mode=wandb_settings.mode, dir=wandb_settings.dir,
                             run_id=run_id("analysis", plan.spec.name), group="analysis")
    config = AnalyzeConfig(storage=layout.root, out=layout.analysis_dir, title=f"ptft grid {plan.spec.name}",
                           wandb=wandb)
    try:
        spec_yaml = yaml.safe_dump(plan.spec.model_dump(mode="json", by_alias=True), sort_keys=False)
        outcome = run_analysis(config, spec_yaml=spec_yaml)
    except (ValueError, FileNotFoundError) as error:  # nothing to analyze yet, duplicates, W&B mode
        _log(f"analysis skipped: {error}")
        return None
    # The report's path is the grid's last line (ptft run, ptft demo); here only what else was written.
    _log(f"analysis: {outcome.records} records" + (f"; W&B run {outcome.wandb_run_dir}" if outcome.wandb_run_dir else ""))
    return layout.analysis_dir
