"""Ray's overhead on the smoke grid, per trial launch, side by side in one run: wall time against the
trials' and evals' own compute time.

    python benchmarks/grid_overhead.py [--out DIR] [--lrs 2] [--max-steps 8] [--launches torch_trainer,in_process]

Builds two tiny OLMo checkpoints, then runs the same 2 checkpoints x 2 datasets x 2 formats x N lrs grid
once per launch (`resources.trial_launch`: a Ray Train worker group per trial, or training inside the
reused Tune trainable) on a local Ray (CPU), each into its own storage. The trial ids are the same (the
launch is a setting), and the benchmark checks that every trial's final validation loss is too. Prints:
  compute   = the trials' own loop time (manifest train_seconds) + each model's evaluation time
  ideal     = compute / concurrent slots (what a zero-overhead scheduler would take)
  overhead  = (wall - ideal) / wall
the fixed cost per trial, extrapolated to a trial of the paper's size, and each stage's ratio against
the first launch. Evaluation overlaps training, so `train` is the Tune experiment's wall time and
`eval tail` what evaluation took after the last trial.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml


def make_checkpoints(folder: Path) -> list[dict]:
    from ptft.core.tiny import build_tiny_model

    refs = []
    for seed, step in enumerate((100, 400)):
        build_tiny_model(str(folder / f"step{step}"), seed=seed)
        refs.append({"path": str(folder / f"step{step}"), "step": step})
    return refs


def make_spec(folder: Path, refs: list[dict], lrs: list[float], max_steps: int, launch: str) -> Path:
    spec = {
        "name": "overhead", "model": {"id": refs[-1]["path"], "checkpoints": refs}, "data": {"source": "mini"},
        "train": {"datasets": ["mnli", "xsum"], "formats": ["default", "instruct"], "learning_rates": lrs,
                  "epochs": 1, "batch_size": 8, "grad_accum": 1, "max_length": 128, "zero_stage": 2,
                  "precision": "fp32", "val_size": 16, "max_steps": max_steps, "log_every": max_steps,
                  "checkpoint_every": max_steps},
        "eval": {"datasets": ["mnli_matched", "xsum"], "formats": ["default", "instruct"], "shots": [1],
                 "limit": 16, "max_new_tokens": 16, "bootstrap_resamples": 100},
        "resources": {"workers_per_trial": 1, "trial_launch": launch, "gpus_per_worker": 0, "cpus_per_worker": 0.9,
                      "max_concurrent_trials": 2, "eval_gpus_per_worker": 0, "eval_cpus_per_worker": 0.9,
                      "max_concurrent_evals": 2},
        "storage": str(folder / f"storage-{launch}"), "wandb": {"project": "bench", "mode": "disabled"},
    }
    path = folder / f"overhead-{launch}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_one(spec_path: Path, paper_trial_seconds: float) -> dict:
    import ray

    from ptft.core.layout import GridLayout
    from ptft.study.plan import build_plan
    from ptft.study.spec import load_spec
    from ray_jobs.grid import run_grid

    plan = build_plan(load_spec(str(spec_path)))
    start = time.perf_counter()
    report = run_grid(plan)
    wall = time.perf_counter() - start
    ray.shutdown()
    assert report.ok, report.trials_failed
    layout = GridLayout(plan.spec.storage_root())
    manifests = {t.trial_id: json.loads(Path(layout.trial(t.trial_id).manifest).read_text()) for t in plan.trials}
    train_compute = sum(m["tokens"]["train_seconds"] for m in manifests.values())
    slots = plan.spec.resources.max_concurrent_trials
    per_trial = (report.seconds["train"] - train_compute / slots) * slots / len(plan.trials)
    return {"launch": plan.spec.resources.trial_launch, "trials": len(plan.trials), "wall": wall,
            "train": report.seconds["train"], "train_compute": train_compute, "slots": slots,
            "eval_tail": report.seconds["eval_after_train"], "eval_compute": sum(report.eval_seconds.values()),
            "per_trial": per_trial, "extrapolated": per_trial / (per_trial + paper_trial_seconds),
            "val_loss": {t: m["val_loss"] for t, m in manifests.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--lrs", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--launches", default="torch_trainer,in_process",
                        help="comma-separated trial launches; the first is the baseline of the ratios")
    parser.add_argument("--paper-trial-seconds", type=float, default=3600.0,
                        help="compute time of one paper-sized trial, for the extrapolation")
    args = parser.parse_args()
    for name, value in (("HF_HUB_OFFLINE", "1"), ("WANDB_MODE", "disabled"), ("DS_ACCELERATOR", "cpu")):
        os.environ.setdefault(name, value)

    folder = Path(args.out or tempfile.mkdtemp(prefix="ptft-overhead-"))
    refs = make_checkpoints(folder)
    lrs = [1e-3 * 3**i for i in range(args.lrs)]
    rows = [run_one(make_spec(folder, refs, lrs, args.max_steps, launch), args.paper_trial_seconds)
            for launch in args.launches.split(",")]

    print(f"grid: {rows[0]['trials']} trials, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'launch':<15}{'wall s':>9}{'train s':>9}{'trial compute s':>17}{'fixed s/trial':>15}"
          f"{'eval tail s':>13}{'paper-size overhead':>21}")
    for row in rows:
        print(f"{row['launch']:<15}{row['wall']:>9.1f}{row['train']:>9.1f}{row['train_compute']:>17.1f}"
              f"{row['per_trial']:>15.1f}{row['eval_tail']:>13.1f}{row['extrapolated']:>21.2%}")
    base = rows[0]
    for row in rows[1:]:
        same = all(abs(row["val_loss"][t] - v) <= 1e-5 for t, v in base["val_loss"].items())
        print(f"{base['launch']} / {row['launch']}: train stage {base['train'] / row['train']:.2f}x, "
              f"whole grid {base['wall'] / row['wall']:.2f}x, fixed cost per trial "
              f"{base['per_trial']:.1f} s -> {row['per_trial']:.1f} s; same val_loss on every trial: {same}")


if __name__ == "__main__":
    main()
