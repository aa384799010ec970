"""The grid end to end on a real local Ray (slow): the smoke grid, a driver killed mid-grid, a trial that
crashes mid-training and resumes from its checkpoint, a rerun that recomputes nothing, and
`ray job submit` against a `ray start --head` cluster on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.grid.ledger import read_state
from ptft.study.plan import build_plan
from ptft.study.spec import load_spec
from tests.ray_jobs.conftest import files_under, write_spec

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FAKE_KEY = "ptft-test-fake-wandb-key-0123456789abcdef"


def _env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", DS_ACCELERATOR="cpu",
                PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _mtimes(paths) -> dict[str, float]:
    return {str(p): os.stat(p).st_mtime_ns for p in paths}


@pytest.mark.timeout(1800)
def test_smoke_grid_survives_a_killed_driver_and_a_crashed_trial(tiny_checkpoints, tmp_path, monkeypatch):
    import ray

    from ray_jobs.grid import run_grid

    spec_path = write_spec(tmp_path, tiny_checkpoints, name="smoke", datasets=("mnli", "xsum"),
                           formats=("default", "instruct"), lrs=(1e-3, 3e-3), n_checkpoints=2,
                           eval_datasets=("mnli_matched", "rte", "xsum"))
    plan = build_plan(load_spec(str(spec_path)))
    layout = GridLayout(plan.spec.storage_root())
    assert (len(plan.cells), len(plan.trials)) == (8, 16)

    # 1. A driver stopped mid-grid: kill it (no clean-up at all) once two trials are complete.
    driver = subprocess.Popen([sys.executable, "-m", "ptft", "run", str(spec_path)], env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and driver.poll() is None:
        done = [t for t in plan.trials if storage.exists(layout.trial(t.trial_id).completed)]
        if len(done) >= 2:
            break
        time.sleep(1)
    assert driver.poll() is None, "the driver ended before it could be stopped"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    _wait_for_ray_to_exit(driver.pid)  # the killed driver's local Ray shares its fate
    state = read_state(plan, layout)
    done_before = [t.trial_id for t in plan.trials if state.trials[t.trial_id] == "done"]
    assert 2 <= len(done_before) < len(plan.trials)
    completed_before = _mtimes(Path(layout.trial(t).completed) for t in done_before)

    # 2. Rerun with a crash injected into a trial that has not finished: it must resume, not restart.
    victim = next(t for t in plan.trials if state.trials[t.trial_id] != "done")
    monkeypatch.setenv("PTFT_INJECT_CRASH", f"{victim.trial_id}:2")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    try:
        report = run_grid(plan)
    finally:
        ray.shutdown()
    assert report.ok, report.trials_failed
    assert report.trials_run == len(plan.trials) - len(done_before)  # finished trials were not retrained
    assert _mtimes(Path(layout.trial(t).completed) for t in done_before) == completed_before
    assert storage.exists(layout.fault_marker(victim.trial_id))
    resumes = json.loads(Path(layout.trial(victim.trial_id).root, "resumes.json").read_text())
    assert resumes and resumes[0]["first_step_after_resume"] > 2  # continued after the step-2 checkpoint
    manifest = json.loads(Path(layout.trial(victim.trial_id).manifest).read_text())
    assert manifest["steps"]["done"] == 4

    # 3. Every planned result exists, once.
    state = read_state(plan, layout)
    assert state.complete, state.counts()
    records = [json.loads(line) for p in Path(layout.evals_root).glob("*/results.jsonl")
               for line in p.read_text().splitlines()]
    assert len(records) == len(plan.eval_jobs)
    assert len({r["job_id"] for r in records}) == len(plan.eval_jobs)
    assert {r["model_kind"] for r in records} == {"base", "finetuned"}
    assert all(0.0 <= r["value"] <= 1.0 and r["n"] > 0 for r in records)
    assert len(list(Path(layout.root, "selection").glob("*.json"))) == len(plan.cells)
    assert Path(layout.analysis_dir, "report.html").is_file()
    assert Path(layout.analysis_dir, "transfer.csv").is_file()
    runs = list(Path(layout.root, "wandb").glob("offline-run-*"))
    assert len(runs) >= len(plan.trials) - len(done_before)
    # Retention: in process, only the latest checkpoint per trial is kept (its own folder, across drivers).
    assert plan.spec.resources.in_process
    for trial in plan.trials:
        kept = [p for p in Path(layout.train_run(trial.trial_id)).glob("step_*") if p.is_dir()]
        assert len(kept) == 1, kept

    # 4. The secret never reaches storage (configs, logs, W&B files, manifests).
    for path in files_under(Path(layout.root)):
        if path.stat().st_size < 50_000_000:
            assert FAKE_KEY.encode() not in path.read_bytes(), path

    # 5. Rerunning the finished grid trains nothing, evaluates nothing and rewrites no result.
    result_files = [Path(p) for p in Path(layout.evals_root).glob("*/records/*.json")]
    before = _mtimes(result_files)
    monkeypatch.delenv("PTFT_INJECT_CRASH")
    try:
        again = run_grid(plan)
    finally:
        ray.shutdown()
    assert (again.trials_run, again.eval_jobs_run, again.eval_models_run) == (0, 0, 0)
    assert _mtimes(result_files) == before


def _wait_for_ray_to_exit(driver_pid: int, limit: float = 60) -> None:
    """Wait (bounded) until the Ray processes started by `driver_pid`'s session are gone."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ps = subprocess.run(["ps", "-eo", "pgid,cmd"], capture_output=True, text=True).stdout
        if not any(line.split(None, 1)[0] == str(driver_pid) for line in ps.splitlines()[1:] if line.strip()):
            return
        time.sleep(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(900)
def test_ray_job_submit_on_a_loopback_head(tiny_checkpoints, tmp_path):
    spec_path = write_spec(tmp_path, tiny_checkpoints, name="submitted")
    temp_dir = f"/tmp/ptft-ray-{os.getpid()}"
    port, dashboard = _free_port(), _free_port()
    env = _env()
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--disable-usage-stats", "--temp-dir", temp_dir],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    client_env = dict(env, RAY_AUTH_MODE="token")  # Ray >= 2.59 turns token auth on for the cluster
    try:
        deadline = time.monotonic() + 120
        while True:
            probe = subprocess.run(["ray", "job", "list", "--address", address], env=client_env,
                                   capture_output=True, text=True)
            if probe.returncode == 0:
                break
            assert time.monotonic() < deadline, probe.stderr[-2000:]
            assert head.poll() is None, "ray start --head exited"
            time.sleep(2)
        runtime_env = json.dumps({"env_vars": {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
                                               "DS_ACCELERATOR": "cpu"}})
        job = subprocess.run(
            ["ray", "job", "submit", "--address", address, "--runtime-env-json", runtime_env, "--",
             sys.executable, "-m", "ptft", "run", str(spec_path)],
            env=client_env, capture_output=True, text=True, timeout=480)
        assert job.returncode == 0 and "succeeded" in job.stdout, job.stdout[-4000:] + job.stderr[-2000:]
        plan = build_plan(load_spec(str(spec_path)))
        layout = GridLayout(plan.spec.storage_root())
        assert read_state(plan, layout).complete
        assert Path(layout.analysis_dir, "report.html").is_file()
    finally:
        # Stop that cluster only: `ray start --block` takes its own processes down with it.
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


@pytest.mark.timeout(300)
def test_a_trial_bigger_than_the_local_ray_is_refused(tiny_checkpoints, tmp_path, capsys):
    """`cpus_per_worker: 64` on a 2-core machine used to wait forever with no message."""
    import ray

    from ptft.cli.main import main

    spec_path = write_spec(tmp_path, tiny_checkpoints, name="too-big")
    try:
        assert main(["run", str(spec_path), "--set", "resources.cpus_per_worker=64"]) == 2
    finally:
        ray.shutdown()
    err = capsys.readouterr().err
    assert "a trial needs 64 CPU (resources.cpus_per_worker)" in err and "lower it" in err
    assert not Path(GridLayout(str(tmp_path / "storage")).lease_file).exists()  # released on the way out
    # `ptft plan --check` says the same before a launch, and stops the Ray it started for the check.
    assert main(["plan", str(spec_path), "--check", "--set", "resources.cpus_per_worker=64"]) == 2
    assert "a trial needs 64 CPU" in capsys.readouterr().err
    assert not ray.is_initialized()
    assert main(["plan", str(spec_path), "--check"]) == 0
