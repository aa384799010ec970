"""`ptft plan CONFIG`: print the plan as readable tables (or one JSON object) and touch no cluster."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ptft.cli.flags import SpecCommandLine
from ptft.study.checkpoints import CheckpointRef, CheckpointResolutionError, Family, RevisionResolver
from ptft.study.estimate import GPU_PEAK_FLOPS, Estimate, estimate_plan
from ptft.study.plan import Plan
from ptft.study.preflight import PreflightError, check_methods, check_plan_data, check_storage, preflight
from ptft.study.spec import qualified_label
from ptft.tasks.errors import DataError

GpuName = Literal[tuple(sorted(GPU_PEAK_FLOPS))]


class PlanOptions(BaseModel):
    """`ptft plan`'s own options (the spec and its `--set` edits are the CONFIG argument)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_json: bool = Field(False, description="Print one JSON object: cells, trials, eval_jobs, estimate.")
    gpu: GpuName = Field("h100", description="GPU for the estimate.")
    peak_flops: float | None = Field(None, gt=0, description="Override the GPU's bf16 peak (FLOP/s).")
    mfu: float = Field(0.4, gt=0, le=1, description="Model FLOPs utilisation assumed, in (0, 1].")
    resolve: bool = Field(False, description="Resolve pre-training steps to hub revisions (needs the hub).")
    check: bool = Field(False, description="Everything before a launch: resolve the hub revisions (is the hub "
                        "reachable?) and hold the resources against the Ray cluster (RAY_ADDRESS, else a local "
                        "Ray started for the check); launches nothing.")


EXAMPLES = """examples:
  ptft plan configs/smoke.yaml
  ptft plan configs/paper.yaml --gpu a100 --mfu 0.35     # the cost on another GPU
  ptft plan configs/paper.yaml --json | jq '.trials | length'
  ptft plan configs/paper.yaml --check                   # everything a launch checks, launching nothing
"""
# The storage configs/paper.yaml ships with: a grid would fail on it only once it first writes.
PLACEHOLDER_STORAGE = ("s3://your-bucket", "gs://your-bucket")


def command_line() -> SpecCommandLine:
    return SpecCommandLine("ptft plan", PlanOptions, description=__doc__.splitlines()[0], epilog=EXAMPLES,
                           rename={"as_json": "--json"})


def missing_checkpoint_folders(plan: Plan) -> list[str]:
    """One line per local checkpoint folder that does not exist (yet: `ptft demo` writes the smoke grid's)."""
    import os

    from ptft.study.checkpoints import local_path

    spec = plan.spec
    fields = ["model"] if spec.models is None else [f"models[{i}]" for i in range(len(spec.models))]
    return [f"{where}.checkpoints[{i}]: checkpoint folder {ref.path!r} does not exist ({path}); the grid "
            "will refuse to start until it does"
            for where, model in zip(fields, spec.model_specs(), strict=True)
            for i, ref in enumerate(model.checkpoint_refs()) if ref.kind == "local"
            and not os.path.isdir(path := local_path(ref.path or "", spec.base_dir))]


def plan_warnings(plan: Plan) -> list[str]:
    """What would stop the grid but need not stop a plan: missing checkpoint folders, the placeholder bucket."""
    lines = missing_checkpoint_folders(plan)
    if plan.spec.storage.startswith(PLACEHOLDER_STORAGE):
        lines.append(f"storage: {plan.spec.storage!r} is the example's placeholder bucket; set your own "
                     "(edit the spec, or --set storage=s3://BUCKET/PREFIX)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    options, plan = command_line().parse_plan(argv)
    if plan is None:
        return 2
    warnings = plan_warnings(plan)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    try:
        if missing_checkpoint_folders(plan) and not options.check:
            # The plan of checkpoints still to be made is still worth reading: the rest of the preflight
            # (preflight() stops at the first missing folder); --check and `ptft run` refuse it.
            check_methods(plan)
            check_storage(plan.spec.storage_root())
            check_plan_data(plan)
        else:
            preflight(plan, about_to_run=options.check)  # what would otherwise fail only once the grid runs
    except (CheckpointResolutionError, DataError, PreflightError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    spec = plan.spec
    estimate = estimate_plan(plan, gpu=options.gpu, mfu=options.mfu, peak_flops=options.peak_flops)
    revisions: dict[str, str] = {}
    if options.resolve or options.check:
        resolver = RevisionResolver(families=spec.checkpoint_families())
        try:
            for model in spec.model_specs():
                for ref in model.checkpoint_refs():
                    path, rev = model.resolve(resolver, ref, spec.base_dir)
                    revisions[qualified_label(spec.model_name_of(model), ref.label)] = rev or path
        except CheckpointResolutionError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if options.check and not _check_cluster(plan):
        return 2
    if options.as_json:
        print(json.dumps(plan_json(plan, estimate, revisions), indent=2, sort_keys=True))
    else:
        print_plan(plan, estimate, revisions)
    return 0


def _check_cluster(plan: Plan) -> bool:
    """Hold the plan's resources against the Ray cluster; prints why not and returns False."""
    from ray_jobs.grid import ResourcesError, check_cluster

    try:
        check_cluster(plan)
    except ResourcesError as err:
        print(f"error: {err}", file=sys.stderr)
        return False
    print("check: checkpoints, storage, data, hub revisions and cluster resources are fine", file=sys.stderr)
    return True


def plan_json(plan: Plan, estimate: Estimate, revisions: dict[str, str] | None = None) -> dict:
    return {
        "name": plan.spec.name,
        "storage": plan.spec.storage,
        "cells": [c.to_json() | {"revision": (revisions or {}).get(c.checkpoint_label)} for c in plan.cells],
        "trials": [t.to_json() for t in plan.trials],
        "eval_jobs": [j.to_json() for j in plan.eval_jobs],
        "skipped_eval_pairs": [list(p) for p in plan.skipped_eval_pairs],
        "estimate": estimate.to_json(),
    }


def _si(x: float) -> str:
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def print_plan(plan: Plan, estimate: Estimate, revisions: dict[str, str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    spec = plan.spec
    checkpoints = [ref for model in spec.model_specs() for ref in model.checkpoint_refs()]
    base_jobs = sum(1 for j in plan.eval_jobs if j.model_kind == "base")
    shown = (f"model {spec.model_named(None).id}" if spec.models is None
             else "models " + ", ".join(m.family for m in spec.models))
    console.print(f"[bold]{spec.name}[/bold]  {shown}  storage {spec.storage}")
    console.print(
        f"{len(checkpoints)} checkpoints x {len(spec.train.datasets)} training datasets -> "
        f"[bold]{len(plan.cells)} cells[/bold], [bold]{len(plan.trials)} trials[/bold], "
        f"[bold]{len(plan.eval_jobs)} eval jobs[/bold] ({base_jobs} base, "
        f"{len(plan.eval_jobs) - base_jobs} fine-tuned) on {len(plan.eval_models())} models"
    )

    methods = len({c.method.label for c in plan.cells}) > 1
    staged = bool(spec.recipes)
    cells = Table(title="Cells (checkpoint x training dataset x format"
                  + (" x method" if methods else "") + ("; recipes: stages after their input" if staged else "") + ")")
    columns = ["cell id", "checkpoint", "revision", "dataset", "format", *(["method"] if methods else []),
               *(["stage", "after", "recipes"] if staged else []), "epochs", "learning rates", "train tokens/trial"]
    for col in columns:
        cells.add_column(col)
    for cell in plan.cells:
        first = plan.trials_of(cell.cell_id)[0]
        rev = (revisions or {}).get(cell.checkpoint_label) or _unresolved(
            spec.model_named(cell.model_name).checkpoint_naming(), cell.checkpoint)
        kind = "" if cell.objective.kind == "sft" else f"{cell.objective.kind}: "
        stage = [str(cell.stage), cell.prior_stages or "checkpoint",
                 ", ".join(cell.recipes) + (" + plain" if cell.plain and cell.recipes else "")
                 + (" (shared)" if len(cell.recipes) + cell.plain > 1 else "")] if staged else []
        cells.add_row(cell.cell_id, cell.checkpoint_label, rev, kind + cell.train_dataset, cell.train_format,
                      *([cell.method.label] if methods else []), *stage, str(cell.epochs),
                      ", ".join(f"{lr:g}" for lr in cell.lrs), _si(estimate.train_tokens_per_trial[first.trial_id]))
    console.print(cells)

    evals = Table(title=f"Eval jobs per model ({spec.eval.mode} mode, shots {spec.eval.shots})")
    evals.add_column("eval dataset")
    evals.add_column("formats")
    per_dataset: dict[str, Counter] = {}
    for job in plan.eval_jobs:
        per_dataset.setdefault(job.job.dataset, Counter())[job.job.fmt] += 1
    for dataset, formats in per_dataset.items():
        evals.add_row(dataset, ", ".join(sorted(formats)))
    console.print(evals)
    if plan.skipped_eval_pairs:
        pairs = ", ".join(f"{d}/{f}" for d, f in plan.skipped_eval_pairs)
        console.print(f"[dim]skipped {len(plan.skipped_eval_pairs)} (dataset, format) pairs the datasets "
                      f"lack: {pairs}[/dim]")

    n = f"{estimate.num_params:,}" if estimate.num_params else "unknown (set model.num_params)"
    console.print("[bold]Estimate[/bold]")
    console.print(f"  parameters            {n}")
    console.print(f"  training tokens       {_si(estimate.train_tokens)}  ->  {_si(estimate.train_flops)}FLOP (6·N·tokens; 4·N where the base is frozen)")
    console.print(f"  eval tokens           {_si(estimate.eval_tokens)}  ->  {_si(estimate.eval_flops)}FLOP (2·N·tokens)")
    if len(estimate.methods) > 1:
        for label, cost in estimate.methods.items():
            trained = f"{cost.trainable_params:,}" if cost.trainable_params is not None else "?"
            memory = f"{cost.model_state_bytes / 2**30:.2f} GiB" if cost.model_state_bytes is not None else "?"
            console.print(f"  {('method ' + label):<22}{cost.trials} trials, {trained} trained parameters, "
                          f"{_si(cost.train_flops)}FLOP, model states {memory}/trial")
    if staged:
        for stage in sorted({t.stage for t in plan.trials}):
            trials = [t for t in plan.trials if t.stage == stage]
            tokens = sum(estimate.train_tokens_per_trial[t.trial_id] for t in trials)
            kinds = ", ".join(sorted({t.objective.kind for t in trials}))
            console.print(f"  {('stage ' + str(stage)):<22}{len(trials)} trials ({kinds}), {_si(tokens)} training tokens")
        sampled = [c for c in plan.cells if c.rejection is not None]
        for config in dict.fromkeys(c.rejection for c in sampled):  # each sampling definition once
            cells = sum(c.rejection == config for c in sampled)
            prompts = f"{config.prompts:,}" if config.prompts else "every training"
            console.print(f"  {'rejection sampling':<22}{cells} cell(s) on {config.dataset}: {config.samples} samples x "
                          f"{prompts} prompts, <= {config.max_new_tokens} new tokens each, reward {config.reward_name}"
                          + (f" (keep >= {config.threshold})" if config.threshold is not None else ""))
    rows = "registry split sizes" if estimate.data_source == "hub" else "rows counted in the local files"
    console.print(f"  rows from             {rows}")
    wall = estimate.wall
    if wall is not None and wall.where == "gpu":
        console.print(f"  GPU-hours             train {estimate.train_gpu_hours:.1f} + eval {estimate.eval_gpu_hours:.1f} "
                      f"on {estimate.gpu.upper()} (peak {_si(estimate.peak_flops)}FLOP/s, MFU {estimate.mfu:.0%})")
    if wall is not None:
        console.print(f"  {'wall clock (' + wall.where + ')':<22}train ~{_duration(wall.train_wall_s)} ({len(plan.trials)} trials, "
                      f"{wall.train_concurrency} at a time), eval ~{_duration(wall.eval_wall_s)} "
                      f"({len(plan.eval_models())} models, {wall.eval_concurrency} at a time; it overlaps training)")
        console.print(f"  [dim]throughput: {wall.throughput_source}[/dim]")
    console.print("[dim]plan only: nothing was launched[/dim]")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _unresolved(family: Family, ref: CheckpointRef) -> str:
    if ref.kind == "step":
        return f"{_branch_shape(family, ref)} (resolved at run time)"
    if ref.kind == "local":
        return ref.path
    return ref.revision or ""


def _branch_shape(family: Family, ref: CheckpointRef) -> str:
    """The branch a step will resolve to, in the family's naming, with what only the hub knows as `*`
    (OLMo's tokens): the family's example with its step (and stage, ingredient) replaced."""
    if family.name == "steps":  # the generic rule: `step{N}` or `step{N}-anything`
        return f"step{ref.step}-*"
    stage = ref.stage if ref.stage is not None else family.default_stage
    pattern = family.name.removeprefix("pattern:")
    if pattern != family.name and "(?P<" not in pattern:  # a user's format string: fill it in
        try:
            return pattern.format(step=ref.step, stage=stage, ingredient=ref.ingredient, tokens="*")
        except (ValueError, TypeError, KeyError):
            pass
    match = family.pattern.fullmatch(family.example)
    if match is None:  # a user's regex: no example to fill in
        return f"step {ref.step} ({family.name})"
    fills = {"step": str(ref.step), "tokens": "*", "stage": str(stage) if stage is not None else "*",
             "ingredient": str(ref.ingredient) if ref.ingredient is not None else "*"}
    text, last = "", 0
    spans = sorted((match.span(name), name) for name in family.pattern.groupindex if match.group(name) is not None)
    for (start, end), name in spans:
        text += family.example[last:start] + fills[name]
        last = end
    text += family.example[last:]
    if ref.ingredient is not None and "ingredient" not in dict((n, s) for s, n in spans):
        # the staged example names no ingredient; staged names put it after the stage (docs/families.md §2)
        text = text.replace(f"stage{stage}-", f"stage{stage}-ingredient{ref.ingredient}-", 1)
    return text


if __name__ == "__main__":
    sys.exit(main())
