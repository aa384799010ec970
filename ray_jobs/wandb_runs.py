"""W&B wiring for the grid: one run per trial (resumable), one per evaluated model.

The API key is read by wandb itself from `WANDB_API_KEY`; ptft only checks whether it is set (to pick
online or offline in `auto` mode) and never copies it into a config, a log line or a file.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

from ptft.core import storage
from ptft.core.ids import content_hash
from ptft.core.wandb_settings import WandbSettings, resolve_mode


def settings_for(spec, storage_root: str) -> WandbSettings:
    # wandb writes locally; for an object-store grid the runs stay on the node until synced.
    directory = storage_root if not storage.is_remote(storage_root) else tempfile.gettempdir()
    return WandbSettings(spec.wandb.project, spec.wandb.entity, resolve_mode(spec.wandb.mode), directory)


def run_id(*parts: str) -> str:
    """A W&B run id derived from our ids, so a resumed trial continues the same run."""
    return content_hash(list(parts), length=16)


def init_run(settings: WandbSettings | None, *, run_id: str, name: str, group: str | None,
             job_type: str, config: dict[str, Any], wait_in_use_s: float = 60.0):
    """Start (or resume) a run; returns None when W&B is disabled.

    Each run gets a W&B service of its own process: a Ray worker inherits `WANDB_SERVICE` from a driver
    that had used W&B, and through that shared service a run of a killed attempt stays "in use" for its
    retry. `finish_run` stops the service again. Should a run still be held, this waits for it, then goes
    on without W&B for this run rather than fail the work it logs.
    """
    if settings is None or settings.mode == "disabled":
        return None
    import wandb

    os.environ.pop("WANDB_SERVICE", None)  # never another process's service (see above)
    os.makedirs(settings.dir, exist_ok=True)
    deadline = time.monotonic() + wait_in_use_s
    while True:
        try:
            return wandb.init(
                project=settings.project, entity=settings.entity, mode=settings.mode, dir=settings.dir,
                id=run_id, resume="allow", name=name, group=group, job_type=job_type, config=config,
                settings=wandb.Settings(init_timeout=60, silent=True, console="off"),
                reinit="create_new",
            )
        except Exception as err:  # wandb raises its own ServerResponseError, not part of its public API
            if "in use" not in str(err):
                raise
            if time.monotonic() > deadline:
                print(f"[ptft] warning: W&B run {run_id} ({name}) is still held by an earlier attempt after "
                      f"{wait_in_use_s:.0f}s; this run goes on without W&B logging", file=sys.stderr, flush=True)
                return None
            time.sleep(2.0)


def finish_run(run) -> None:
    """Finish a run and stop this process's W&B service: Ray ends idle workers without running W&B's
    exit hook cleanly, which otherwise prints a 'Connection lost' traceback from every such worker."""
    if run is None:
        return
    import wandb

    run.finish()
    wandb.teardown()
