"""Ray's overhead on the smoke grid: wall time against the trials' and evals' own compute time.

    python benchmarks/grid_overhead.py [--out DIR] [--lrs 2] [--max-steps 8]

Builds two tiny OLMo checkpoints, runs a 2 checkpoints x 2 datasets x 2 formats x N lrs grid on a local
Ray (CPU), and prints, per stage and in total:
  compute   = the trials' own loop time (manifest train_seconds) + each model's evaluation time
  ideal     = compute / concurrent slots (what a zero-overhead scheduler would take)
  overhead  = (wall - ideal) / wall
and the fixed cost per trial, extrapolated to a trial of the paper's size (the target is <= 10% there).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml


def make_spec(folder: Path, lrs: list[float], max_steps: int) -> Path:
    from ptft.core.tiny import build_tiny_model

    refs = []
    for seed, step in enumerate((100, 400)):
        build_tiny_model(str(folder / f"step{step}"), seed=seed)
        refs.append({"path": str(folder / f"step{step}"), "step": step})
    spec = {
        "name": "overhead", "model": {"id": refs[-1]["path"], "checkpoints": refs}, "data": {"source": "mini"},
        "train": {"datasets": ["mnli", "xsum"], "formats": ["default", "instruct"], "learning_rates": lrs,
                  "epochs": 1, "batch_size": 8, "grad_accum": 1, "max_length": 128, "zero_stage": 2,
                  "precision": "fp32", "val_size": 16, "max_steps": max_steps, "log_every": max_steps,
                  "checkpoint_every": max_steps},
        "eval": {"datasets": ["mnli_matched", "xsum"], "formats": ["default", "instruct"], "shots": [1],
                 "limit": 16, "max_new_tokens": 16, "bootstrap_resamples": 100},
        "resources": {"workers_per_trial": 1, "gpus_per_worker": 0, "cpus_per_worker": 0.9,
                      "max_concurrent_trials": 2, "eval_gpus_per_worker": 0, "eval_cpus_per_worker": 0.9,
                      "max_concurrent_evals": 2},
        "storage": str(folder / "storage"), "wandb": {"project": "bench", "mode": "disabled"},
    }
    path = folder / "overhead.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--lrs", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--paper-trial-seconds", type=float, default=3600.0,
                        help="compute time of one paper-sized trial, for the extrapolation")
    args = parser.parse_args()
    for name, value in (("HF_HUB_OFFLINE", "1"), ("WANDB_MODE", "disabled"), ("DS_ACCELERATOR", "cpu")):
        os.environ.setdefault(name, value)

    import ray

    from ptft.core.layout import GridLayout
    from ptft.study.plan import build_plan
    from ptft.study.spec import load_spec
    from ray_jobs.grid import run_grid

    folder = Path(args.out or tempfile.mkdtemp(prefix="ptft-overhead-"))
    spec_path = make_spec(folder, [1e-3 * 3**i for i in range(args.lrs)], args.max_steps)
    plan = build_plan(load_spec(str(spec_path)))
    start = time.perf_counter()
    report = run_grid(plan)
    wall = time.perf_counter() - start
    ray.shutdown()

    layout = GridLayout(plan.spec.storage_root())
    train_compute = sum(json.loads(Path(layout.trial(t.trial_id).manifest).read_text())["tokens"]["train_seconds"]
                        for t in plan.trials)
    eval_compute = sum(report.eval_seconds.values())
    slots = plan.spec.resources.max_concurrent_trials
    rows = [("train", report.seconds["train"], train_compute, slots),
            ("eval", report.seconds["eval"], eval_compute, plan.spec.resources.max_concurrent_evals)]
    print(f"grid: {len(plan.trials)} trials, {len(report.eval_seconds)} evaluated models, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'stage':<8}{'wall s':>10}{'compute s':>12}{'ideal s':>10}{'overhead':>10}")
    total_ideal = 0.0
    for stage, stage_wall, compute, n in rows:
        ideal = compute / n
        total_ideal += ideal
        print(f"{stage:<8}{stage_wall:>10.1f}{compute:>12.1f}{ideal:>10.1f}{(stage_wall - ideal) / stage_wall:>10.1%}")
    print(f"{'total':<8}{wall:>10.1f}{train_compute + eval_compute:>12.1f}{total_ideal:>10.1f}"
          f"{(wall - total_ideal) / wall:>10.1%}")
    per_trial = (report.seconds["train"] - train_compute / slots) * slots / len(plan.trials)
    print(f"fixed cost per trial: {per_trial:.1f} s (worker start, imports, DeepSpeed init, checkpoint I/O)")
    print(f"extrapolated overhead for a {args.paper_trial_seconds:.0f} s trial: "
          f"{per_trial / (per_trial + args.paper_trial_seconds):.1%} (target <= 10%)")


if __name__ == "__main__":
    main()
