"""One driver per grid: a live holder refuses a second `ptft run`, a dead one's lease is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.grid.lease import GridBusyError, GridLease

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
from ptft.core.layout import GridLayout
from ptft.grid.lease import GridLease
lease = GridLease(GridLayout(sys.argv[1])).acquire()
print("HELD", flush=True)
time.sleep(600)
"""


def test_a_live_driver_on_this_host_holds_the_grid_until_it_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO)), start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "HELD"
        with pytest.raises(GridBusyError, match=f"pid {holder.pid}"):
            GridLease(GridLayout(str(tmp_path))).acquire()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # killed: no clean-up, its lease stays behind
        holder.wait()
    lease = GridLease(GridLayout(str(tmp_path))).acquire()  # the holder is gone: taken over, and said
    assert any("gone" in note for note in lease.notes)
    lease.release()
    assert not storage.exists(GridLayout(str(tmp_path)).lease_file)


def test_across_hosts_the_heartbeat_decides(tmp_path):
    layout = GridLayout(str(tmp_path))
    storage.atomic_write_json(layout.lease_file, {"token": "x", "host": "another-node", "pid": 1,
                                                  "heartbeat": time.time()})
    with pytest.raises(GridBusyError, match="another-node"):
        GridLease(layout).acquire()
    storage.atomic_write_json(layout.lease_file, {"token": "x", "host": "another-node", "pid": 1,
                                                  "heartbeat": time.time() - 3600})
    with GridLease(layout) as lease:
        assert json.loads(Path(layout.lease_file).read_text())["token"] == lease.token
    assert not storage.exists(layout.lease_file)


def test_release_leaves_another_drivers_lease_alone(tmp_path):
    layout = GridLayout(str(tmp_path))
    lease = GridLease(layout).acquire()
    storage.atomic_write_json(layout.lease_file, {"token": "theirs", "host": "n", "pid": 1, "heartbeat": time.time()})
    lease.release()
    assert storage.read_json(layout.lease_file)["token"] == "theirs"


def test_ptft_run_refuses_a_held_grid_before_ray(tmp_path, capsys):
    from ptft.cli.main import main
    from tests.ray_jobs.conftest import write_spec

    (tmp_path / "ck" / "step100").mkdir(parents=True)
    spec = write_spec(tmp_path, tmp_path / "ck", name="held")
    storage_root = str(tmp_path / "storage")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, storage_root], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO)), start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "HELD"
        assert main(["run", str(spec)]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
