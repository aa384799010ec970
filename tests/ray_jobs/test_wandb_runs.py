"""W&B runs of killed attempts: a retry must get its run back, even where a driver's W&B service is
inherited by its workers (WANDB_SERVICE), as it was in the grid test after a SIGKILLed driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import sys, time
from ptft.core.wandb_settings import WandbSettings
from ray_jobs.wandb_runs import finish_run, init_run
settings = WandbSettings("ptft-test", None, "offline", sys.argv[1])
run = init_run(settings, run_id="trial-run-1", name="t", group="g", job_type="train", config={}, wait_in_use_s=5)
print("RUN" if run is not None else "NONE", flush=True)
if sys.argv[2] == "hang":
    time.sleep(600)
finish_run(run)
"""


def test_a_killed_attempts_run_is_not_in_use_for_its_retry(tmp_path):
    import wandb

    # This process starts a W&B service, and its children inherit WANDB_SERVICE, as Ray workers do.
    parent = wandb.init(project="ptft-test", id="parent-run", dir=str(tmp_path), mode="offline",
                        reinit="create_new")
    try:
        assert os.environ.get("WANDB_SERVICE")
        env = dict(os.environ, PYTHONPATH=str(REPO), WANDB_SILENT="true")
        first = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), "hang"], env=env,
                                 stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert first.stdout.readline().strip() == "RUN"
        os.killpg(first.pid, signal.SIGKILL)  # killed mid-run: its run is never finished
        first.wait()
        start = time.monotonic()
        retry = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), "finish"], env=env,
                               capture_output=True, text=True, timeout=120)
        assert retry.returncode == 0, retry.stderr[-2000:]
        assert retry.stdout.strip() == "RUN", retry.stderr[-2000:]  # not NONE: it got its run back
        assert time.monotonic() - start < 60
    finally:
        parent.finish()
