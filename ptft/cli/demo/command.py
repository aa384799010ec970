"""`ptft demo [--out DIR] [--quick]`: the whole study on a laptop CPU, offline, in minutes.

1. pre-train a tiny OLMo on a generated corpus, saving checkpoints along the way (DIR/pretrain/step{N});
2. write a grid spec over those checkpoints (DIR/demo.yaml) and run it on a local Ray: fine-tune every
   (checkpoint, dataset, format) at each learning rate, keep the best lr per cell, evaluate every base
   and fine-tuned model on the mini eval sets, and analyze (DIR/grid/analysis/report.html);
3. print the headline numbers, where the report is, and how to sync the offline W&B runs.

Re-running the same command continues: finished checkpoints, trials and evals are reused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

from pydantic import BaseModel, ConfigDict, Field

from ptft.cli.demo.profiles import FULL, QUICK, DemoProfile, grid_spec, with_seed
from ptft.cli.flags import CommandLine

# The demo runs offline on CPU unless the caller says otherwise; set before Ray starts so workers inherit.
ENV_DEFAULTS = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
                "DS_ACCELERATOR": "cpu", "TOKENIZERS_PARALLELISM": "false", "WANDB_SILENT": "true",
                # Idle OpenMP threads sleep instead of spinning: with the default, a second busy process on a
                # 2-core box made pre-training steps ~10x slower (0.3 s -> 3 s).
                "OMP_WAIT_POLICY": "PASSIVE"}


def _log(message: str) -> None:
    print(f"[ptft demo] {message}", flush=True)


class DemoOptions(BaseModel):
    """`ptft demo`'s options (also from `--config FILE.yaml` and `--set`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    out: str = Field("runs/demo", description="Output folder.")
    quick: bool = Field(False, description="A much smaller demo (2 checkpoints, 1 dataset, 1 lr): ~2-3 minutes.")
    progress: bool = Field(True, description="Show the pre-training progress bar (only where stderr is a terminal).")
    verbose: bool = Field(False, description="Show the libraries' output (Ray workers, Tune, DeepSpeed) on the "
                          "console too; otherwise it goes to DIR/grid/logs/<run>/.")
    seed: int = Field(0, ge=0, description="Shifts every seed of the demo (corpus, pre-training, fine-tuning); "
                      "0 is the README's run. Claims worth making hold at every seed.")


EXAMPLES = """examples:
  ptft demo --quick --out /tmp/demo      # 2 checkpoints, 1 dataset, 1 lr: a few minutes
  ptft demo                              # the README's demo (runs/demo)
  ptft demo --seed 1 --out runs/demo-seed1
  ptft report runs/demo/grid --open      # then: its report
"""


def command_line() -> CommandLine:
    return CommandLine("ptft demo", DemoOptions, description=__doc__, epilog=EXAMPLES)


def write_spec(profile: DemoProfile, checkpoints: dict[int, str], out_dir: str, command: str = "ptft demo") -> str:
    """Write the grid spec into `out_dir` and return its path (absolute paths: it runs from anywhere)."""
    import yaml

    from ptft.core import storage

    spec = grid_spec(profile, checkpoints, storage=os.path.join(out_dir, "grid"))
    path = os.path.join(out_dir, f"{profile.name}.yaml")
    header = (f"# Written by `{command}`; run it again with\n"
              f"#   python -m ptft run {path}\n")
    storage.atomic_write_text(path, header + yaml.safe_dump(spec, sort_keys=False))
    return path


def headline(analysis_dir: str, train_datasets: tuple[str, ...]) -> list[str]:
    """A few lines of numbers from transfer.csv: the in-domain gain per training set and checkpoint."""
    import pandas as pd

    from evals.analysis.taskinfo import in_domain

    path = os.path.join(analysis_dir, "transfer.csv")
    if not os.path.isfile(path):
        return []
    table = pd.read_csv(path)
    table = table[table["status"] == "ok"]
    if "prior_stages" in table:  # one-stage cells here; the recipes' stages have their own lines below
        table = table[table["prior_stages"].isna()]
    lines = []
    for train in train_datasets:
        rows = table[(table["train_dataset"] == train)
                     & table["eval_dataset"].map(lambda e, t=train: in_domain(t, e))
                     & (table["eval_format"] == table["train_format"])]
        if rows.empty:
            continue
        methods = rows["method"] if "method" in rows else pd.Series("full", index=rows.index)
        for method in sorted(set(methods), key=lambda m: (m != "full", m)):
            by_step = (rows[methods == method].groupby("step")[["base", "finetuned", "delta"]].mean()
                       .sort_index())
            cells = ", ".join(f"step {int(s)}: {r.base:.2f} -> {r.finetuned:.2f} ({r.delta:+.2f})"
                              for s, r in by_step.iterrows())
            named = "" if method == "full" else f" with {method}"
            lines.append(f"{train}{named} on its own eval set(s), base -> fine-tuned: {cells}")
    return lines + _stage_lines(os.path.join(analysis_dir, "stage_training.csv"))


def _stage_lines(path: str) -> list[str]:
    """Recipes: each stage's own held-out numbers per checkpoint (stage_training.csv)."""
    import pandas as pd

    if not os.path.isfile(path):
        return []
    table = pd.read_csv(path)
    lines = []
    for lineage, rows in table.groupby("lineage", sort=False):
        rows = rows.sort_values("checkpoint_step")
        kind = str(rows["objective"].iloc[0])
        if kind == "continual_pt" and "val_ppl_before" in rows:
            new = ", ".join(f"step {int(r.checkpoint_step)}: {r.val_ppl_before:.1f} -> {r.val_ppl:.1f}"
                            for r in rows.itertuples())
            old = ", ".join(f"{r.old_ppl_before:.1f} -> {r.old_ppl:.1f}" for r in rows.itertuples())
            lines.append(f"{lineage}: new-domain perplexity {new} (old domain {old})")
        elif kind == "dpo":
            accuracy = ", ".join(f"step {int(r.checkpoint_step)}: {r.reward_accuracy:.2f}" for r in rows.itertuples())
            lines.append(f"{lineage}: held-out reward accuracy {accuracy} (0.5 is chance)")
    return lines


def demo_main(argv: Sequence[str] | None = None) -> int:
    """Run the embedded demo; returns the exit status (0 ok, 1 some trial failed, 2 bad arguments)."""
    options, _ = command_line().parse(argv)
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    profile = with_seed(QUICK if options.quick else FULL, options.seed)
    out_dir = os.path.abspath(options.out)
    os.makedirs(out_dir, exist_ok=True)
    started = time.perf_counter()

    from ptft.cli.demo.pretrain import checkpoint_dir, is_done

    p = profile.pretrain
    pretrain_dir = os.path.join(out_dir, "pretrain")
    _log(f"1/3 pre-training a tiny OLMo ({p.layers} layers, hidden {p.hidden}) for {p.total_steps} steps; "
         f"checkpoints at steps {', '.join(map(str, p.checkpoint_steps))}")
    if is_done(pretrain_dir, p):
        _log(f"pre-training checkpoints already in {pretrain_dir}; reusing them")
    else:
        # A child process: OMP_WAIT_POLICY only takes effect if it is set before torch loads.
        cmd = [sys.executable, "-m", "ptft.cli.demo.pretrain", pretrain_dir, json.dumps(asdict(p))]
        subprocess.run(cmd + ([] if options.progress else ["--no-progress"]), check=True)
    checkpoints = {s: checkpoint_dir(pretrain_dir, s) for s in sorted(p.checkpoint_steps)}
    pretrain_seconds = time.perf_counter() - started

    from ptft.core.layout import GridLayout
    from ptft.study.plan import build_plan
    from ptft.study.spec import load_spec
    from ray_jobs.grid import run_grid
    from ray_jobs.local_ray import owned_local_ray

    command = "ptft demo" + (" --quick" if options.quick else "") + (f" --seed {options.seed}" if options.seed else "")
    spec_path = write_spec(profile, checkpoints, out_dir, command)
    plan = build_plan(load_spec(spec_path))
    _log(f"2/3 the grid ({spec_path}): {len(plan.cells)} cells, {len(plan.trials)} trials, "
         f"{len(plan.eval_jobs)} eval jobs on a local Ray")
    with owned_local_ray():
        report = run_grid(plan, verbose=options.verbose)
    total = time.perf_counter() - started
    _log(f"3/3 done in {total / 60:.1f} min (pre-training {pretrain_seconds:.0f}s, "
         + ", ".join(f"{k} {v:.0f}s" for k, v in report.seconds.items()) + ")")
    if report.analysis_dir:
        for line in headline(report.analysis_dir, profile.dataset_names):
            _log(line)
        _log(f"report: {os.path.join(report.analysis_dir, 'report.html')} "
             f"(tables and figures beside it: transfer.csv, groups.csv, *.png)")
    _log(f"W&B runs (offline): wandb sync {GridLayout(plan.spec.storage_root()).wandb_dir}/offline-run-*")
    if report.trials_failed:
        print(report.failure_message(), file=sys.stderr)
        return 1
    return 0


main = demo_main  # the `ptft demo` entry point (ptft/cli/main.py)


if __name__ == "__main__":
    sys.exit(demo_main())
