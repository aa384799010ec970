"""Memory of a reused trial process: N one-worker trials in one process, as a reused Tune actor runs them.

    python benchmarks/worker_reuse.py [--trials 20] [--max-steps 4] [--zero-stage 2]

Each trial is a real `train_worker` call (DeepSpeed engine, checkpoint, export, COMPLETED) on a tiny OLMo,
each with its own output folder and lr, the way `ray_jobs.train_trials.train_in_process` calls it.
Prints the process's RSS after every trial and the growth per trial fitted over the second half (the
first trials warm allocator pools and import caches), plus the seconds per trial after the first: the
fixed cost a reused process pays per trial.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import tempfile
import time


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--zero-stage", type=int, default=2)
    args = parser.parse_args()
    for name, value in (("HF_HUB_OFFLINE", "1"), ("WANDB_MODE", "disabled"), ("DS_ACCELERATOR", "cpu")):
        os.environ.setdefault(name, value)

    from ptft.core.tiny import build_tiny_model
    from trainers.config import TrainConfig
    from trainers.job import TrainJob
    from trainers.sft import release_accelerator_memory, train_worker

    folder = tempfile.mkdtemp(prefix="ptft-reuse-")
    model = os.path.join(folder, "model")
    build_tiny_model(model, seed=0)
    config = TrainConfig(epochs=1, batch_size=4, grad_accum=1, max_length=96, val_size=8, log_every=2,
                         checkpoint_every=2, max_steps=args.max_steps, zero_stage=args.zero_stage,
                         precision="fp32")
    rows = []
    for i in range(args.trials):
        job = TrainJob(trial_id=f"t{i}", cell_id="c", model=model, dataset="mnli", data_source="mini",
                       data_limit=64, lr=1e-3 * (1 + i % 3), config=config,
                       output_dir=os.path.join(folder, f"trial{i}"))
        start = time.perf_counter()
        train_worker(job)
        gc.collect()
        release_accelerator_memory()
        rows.append((time.perf_counter() - start, rss_mib()))
        print(f"trial {i + 1:>3}: {rows[-1][0]:6.2f} s  rss {rows[-1][1]:8.1f} MiB", flush=True)
    half = rows[len(rows) // 2:]
    n = len(half)
    xs = list(range(n))
    mean_x, mean_y = sum(xs) / n, sum(r for _, r in half) / n
    slope = sum((x - mean_x) * (r - mean_y) for x, (_, r) in zip(xs, half, strict=True)) / max(
        sum((x - mean_x) ** 2 for x in xs), 1e-9)
    later = [s for s, _ in rows[1:]]
    print(f"rss: first {rows[0][1]:.1f} MiB, last {rows[-1][1]:.1f} MiB, growth over the second half "
          f"{slope:+.2f} MiB/trial; peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")
    print(f"seconds per trial after the first: median {sorted(later)[len(later) // 2]:.2f} "
          f"(first {rows[0][0]:.2f}, includes the imports)")


if __name__ == "__main__":
    main()
