"""One driver per grid: a lease in the grid's storage, so two `ptft run`s of one grid never both train it.

The lease names the driver (host, pid) and carries a heartbeat the driver renews while it works. A second
driver is refused while the holder lives: on the same host that is asked of the process table; across
hosts, a heartbeat older than `stale_after_s` means the holder is gone (a killed driver, a lost node),
and the lease is taken over with a line that says so. On object storage the write-then-read-back check
narrows, but cannot close, the window in which two drivers start at the same instant.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from ptft.core import storage
from ptft.core.layout import GridLayout


class GridBusyError(RuntimeError):
    """Another live driver holds this grid's lease."""


def _alive_here(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class GridLease:
    layout: GridLayout
    stale_after_s: float = 300.0
    beat_every_s: float = 30.0
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    last_beat: float = 0.0
    notes: list[str] = field(default_factory=list)

    def _record(self) -> dict:
        return {"token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                "heartbeat": time.time()}

    def acquire(self) -> GridLease:
        path = self.layout.lease_file
        if storage.exists(path):
            held = storage.read_json(path)
            age = time.time() - float(held.get("heartbeat", 0))
            same_host = held.get("host") == socket.gethostname()
            alive = _alive_here(int(held.get("pid", -1))) if same_host else age < self.stale_after_s
            if alive and held.get("pid") != os.getpid():
                raise GridBusyError(
                    f"grid storage {self.layout.root} is being run by another driver (host {held.get('host')}, "
                    f"pid {held.get('pid')}, heartbeat {age:.0f}s ago). Wait for it to finish, follow it with "
                    f"`ptft status`, or, if that driver is gone, delete {path}.")
            self.notes.append(f"took over the lease of a driver that is gone (host {held.get('host')}, "
                              f"pid {held.get('pid')}, heartbeat {age:.0f}s ago)")
        storage.atomic_write_json(path, self._record())
        time.sleep(0.05)  # a driver that started at the same instant wrote after us: it holds the lease
        if storage.read_json(path).get("token") != self.token:
            raise GridBusyError(f"another driver took the lease of {self.layout.root} at the same time")
        self.last_beat = time.monotonic()
        return self

    def beat(self) -> None:
        """Renew the heartbeat, at most every `beat_every_s` (cheap to call from a loop)."""
        if time.monotonic() - self.last_beat >= self.beat_every_s:
            storage.atomic_write_json(self.layout.lease_file, self._record())
            self.last_beat = time.monotonic()

    def release(self) -> None:
        path = self.layout.lease_file
        if storage.exists(path) and storage.read_json(path).get("token") == self.token:
            storage.remove(path)

    def __enter__(self) -> GridLease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
