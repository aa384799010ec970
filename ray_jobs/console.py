"""What a grid prints, and where the rest goes.

The console carries ptft's own `[ptft]` lines: what is already done, each finished trial with its
duration, the trial phase's elapsed time and ETA, each evaluated model, the report. Everything the
libraries print goes to one folder per run, `<storage>/logs/<run>/` (`GridLogs`):

- `driver.log`: this process's library loggers (Ray's, Tune's, DeepSpeed's, transformers', ...);
- `worker-<pid>.log`: each worker process of a local Ray this process started (Ray's worker-group and
  controller lines, Ray Train's per-report lines, DeepSpeed's op-loading message, tqdm bars, tracebacks).
  On a cluster the grid joined, workers' output stays where Ray keeps it (the dashboard, `ray logs`).

`--verbose` (`ptft run`, `ptft demo`) leaves all of it on the console, as Ray prints it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ptft.core import storage

# The loggers whose records are library chatter on a grid's console. Ray's own logger has a stderr handler
# of its own (propagate off), so each is given the file handler directly rather than through the root.
LIBRARY_LOGGERS = ("ray", "deepspeed", "DeepSpeed", "transformers", "datasets", "torch", "wandb", "filelock",
                   "urllib3", "fsspec", "pyarrow")
# Set on a local Ray's workers: the folder `redirect_worker_output` writes their output into.
WORKER_LOG_DIR_ENV = "PTFT_WORKER_LOG_DIR"
WORKER_SETUP_HOOK = "ray_jobs.console.redirect_worker_output"


@dataclass(frozen=True)
class GridLogs:
    """One run's log folder: under storage when it is local; object storage is not a file system that
    many processes append to, so such a grid logs to the local temp folder and says where."""

    root: str

    @classmethod
    def for_run(cls, storage_root: str, grid_name: str, started: float | None = None) -> GridLogs:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
        base = (storage.join(storage_root, "logs") if not storage.is_remote(storage_root)
                else os.path.join(tempfile.gettempdir(), "ptft-logs", grid_name))
        return cls(os.path.join(base, f"{stamp}-{os.getpid()}"))

    @property
    def driver_log(self) -> str:
        return os.path.join(self.root, "driver.log")

    def worker_runtime_env(self) -> dict[str, object]:
        """The runtime_env of a local Ray whose workers write their output here."""
        return {"worker_process_setup_hook": WORKER_SETUP_HOOK, "env_vars": {WORKER_LOG_DIR_ENV: self.root}}


def redirect_worker_output() -> None:
    """Ray's `worker_process_setup_hook`: point this worker's stdout and stderr (the file descriptors, so
    C++ logs and child processes follow) at `worker-<pid>.log` in `$PTFT_WORKER_LOG_DIR`. Ray streams a
    worker's output to the driver from the files it opened for them; output written here never reaches
    the console. A folder that cannot be written leaves the worker as it was."""
    directory = os.environ.get(WORKER_LOG_DIR_ENV)
    if not directory:
        return
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(os.path.join(directory, f"worker-{os.getpid()}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o644)
    except OSError:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


@contextlib.contextmanager
def library_logs_to(path: str | None) -> Iterator[None]:
    """Inside the block, the library loggers of this process write to `path` only (nothing on the
    console); their handlers and propagation are restored afterwards. `None`: leave them alone.

    `logging.lastResort` (where a record no handler takes goes: stderr) points at the file too, since
    `ray.init(configure_logging=False)` clears the handlers of Ray's logger and then logs through it."""
    if path is None:
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)  # wandb logs at DEBUG
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers = [handler]
        logger.propagate = False
    last_resort, logging.lastResort = logging.lastResort, handler
    try:
        yield
    finally:
        logging.lastResort = last_resort
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()


def duration(seconds: float) -> str:
    """12s, 3m05s, 1h02m: short enough for a progress line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class TrialPhase:
    """The trial phase's progress: one line as each trial ends (its duration, the phase's elapsed time and
    an ETA), and a heartbeat line when nothing was said for `heartbeat_s` (long trials)."""

    total: int
    clock: Callable[[], float] = time.monotonic
    heartbeat_s: float = 600.0
    finished: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.started = self.last_said = self.clock()

    def _where(self, now: float) -> str:
        elapsed = now - self.started
        if self.finished >= self.total:
            return f"trial phase done: {self.total} trials in {duration(elapsed)}"
        if self.finished == 0:
            return f"trials 0/{self.total} after {duration(elapsed)}"
        # Trials run side by side: the mean gap between endings so far already counts the concurrency.
        left = elapsed / self.finished * (self.total - self.finished)
        return f"trials {self.finished}/{self.total} in {duration(elapsed)}, about {duration(left)} to go"

    def trial_ended(self, seconds: float | None) -> str:
        """The line after a trial's `trained k/N` line; `seconds`: its own wall time, when known."""
        self.finished += 1
        now = self.last_said = self.clock()
        took = f"took {duration(seconds)}; " if seconds is not None else ""
        return f"  {took}{self._where(now)}"

    def heartbeat(self) -> str | None:
        """A progress line if nothing was said for `heartbeat_s`, else None."""
        now = self.clock()
        if self.finished >= self.total or now - self.last_said < self.heartbeat_s:
            return None
        self.last_said = now
        return self._where(now)
