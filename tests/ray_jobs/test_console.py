"""The grid's console: ptft's own lines with durations and an ETA; library output in log files (a local
Ray's workers included, on a real Ray); W&B runs named and tagged as people talk about the grid."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from ray_jobs.console import GridLogs, TrialPhase, duration, library_logs_to

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_trial_phase_says_each_duration_the_elapsed_time_and_an_eta():
    clock = Clock()
    phase = TrialPhase(total=4, clock=clock, heartbeat_s=600)
    clock.now += 30
    assert phase.trial_ended(25.4) == "  took 25s; trials 1/4 in 30s, about 1m30s to go"
    clock.now += 30  # two side by side: the mean gap between endings is the pace
    assert phase.trial_ended(None) == "  trials 2/4 in 1m00s, about 1m00s to go"
    assert phase.heartbeat() is None  # said something a minute ago
    clock.now += 601
    assert phase.heartbeat() == "trials 2/4 in 11m01s, about 11m01s to go"
    assert phase.heartbeat() is None  # once per quiet stretch
    phase.trial_ended(3600 * 2 + 61)
    assert phase.trial_ended(1.0) == "  took 1s; trial phase done: 4 trials in 11m01s"
    assert duration(2 * 3600 + 61) == "2h01m" and duration(-1) == "0s"


def test_library_logs_go_to_the_file_and_the_loggers_are_restored(tmp_path, capfd):
    ray_logger = logging.getLogger("ray")
    before = (list(ray_logger.handlers), ray_logger.propagate, logging.lastResort)
    path = tmp_path / "logs" / "driver.log"
    with library_logs_to(str(path)):
        logging.getLogger("ray.tune").warning("tune says hello")
        ray_logger.handlers.clear()  # what ray.init(configure_logging=False) does, then it logs through it
        logging.getLogger("ray._private.worker").warning("token auth is on")
        logging.getLogger("deepspeed").warning("op loaded")
    assert capfd.readouterr().err == ""
    text = path.read_text()
    assert "tune says hello" in text and "token auth is on" in text and "op loaded" in text
    assert (list(ray_logger.handlers), ray_logger.propagate, logging.lastResort) == before


def test_logs_of_object_storage_grids_stay_local(tmp_path):
    local = GridLogs.for_run(str(tmp_path), "g", started=0)
    assert local.root.startswith(str(tmp_path / "logs") + "/") and local.driver_log.endswith("/driver.log")
    remote = GridLogs.for_run("s3://bucket/grid", "g", started=0)
    assert "://" not in remote.root and "ptft-logs/g/" in remote.root


WORKER_SCRIPT = """
import os, sys
import ray
from ray_jobs.console import GridLogs
from ray_jobs.grid import connect_ray

logs = GridLogs(sys.argv[1])
assert connect_ray(logs)  # a local Ray this process started

@ray.remote(num_cpus=0.1)
def chatter():
    print("worker stdout chatter", flush=True)
    os.write(2, b"worker fd2 chatter\\n")  # what C++ logs and child processes write
    return os.getpid()

pid = ray.get(chatter.remote())
ray.shutdown()
print("PID", pid)
"""


@pytest.mark.timeout(300)
def test_a_local_rays_workers_write_into_the_log_folder_not_the_console(tmp_path):
    result = subprocess.run([sys.executable, "-c", WORKER_SCRIPT, str(tmp_path / "run")], capture_output=True,
                            text=True, cwd=REPO, timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "chatter" not in result.stdout + result.stderr
    pid = result.stdout.split("PID")[-1].strip()
    text = (tmp_path / "run" / f"worker-{pid}.log").read_text()
    assert "worker stdout chatter" in text and "worker fd2 chatter" in text


def _plan(tmp_path):
    from ptft.study.plan import build_plan
    from ptft.study.spec import load_spec
    from tests.ray_jobs.conftest import write_spec

    for step in ("step100", "step400"):
        (tmp_path / "ck" / step).mkdir(parents=True, exist_ok=True)
    return build_plan(load_spec(str(write_spec(tmp_path, tmp_path / "ck", name="wb", lrs=(1e-3, 3e-3)))))


def test_wandb_runs_are_grouped_by_cell_named_by_model_and_tagged(tmp_path, monkeypatch):
    from evals.jobs import ModelRef
    from ray_jobs.wandb_runs import (
        cell_group,
        eval_run_name,
        finish_run,
        init_run,
        log_selection,
        run_tags,
        settings_for,
    )
    from tests.ray_jobs.wandb_files import offline_runs

    monkeypatch.setattr(sys, "argv", ["ptft", "run", "wb.yaml", "--set", "train.epochs=1"])
    plan = _plan(tmp_path)
    trial = plan.trials[0]
    cell = plan.cell(trial.cell_id)
    settings = settings_for(plan.spec, str(tmp_path / "storage"))
    assert cell_group(trial) == cell_group(cell) == "mnli-default-ckpt step100"
    run = init_run(settings, run_id="t1", name=trial.name, group=cell_group(trial), job_type="train",
                   config={"cell_id": trial.cell_id}, tags=run_tags(trial))
    finish_run(run)
    log_selection(settings, plan, cell, {"metric": "val_loss", "winner": {"trial_id": trial.trial_id, "lr": 3e-3,
                                                                            "val_loss": 1.5},
                                         "candidates": [{"lr": 1e-3, "val_loss": 2.0}, {"lr": 3e-3, "val_loss": 1.5}]})
    finetuned = ModelRef.of("x", model_kind="finetuned", base_model="tiny", checkpoint="step100",
                            train_dataset="mnli", train_format="default", lr=3e-3, trial_id=trial.trial_id)
    base = ModelRef.of("x", base_model="tiny", checkpoint="step100")
    assert eval_run_name(finetuned.identity) == "eval mnli-default-ckpt step100 lr0.003"
    assert cell_group(finetuned.identity) == cell_group(trial)  # its evaluation joins the cell's group
    assert eval_run_name(base.identity) == "eval base ckpt step100"
    assert run_tags(base.identity) == ["checkpoint:step100"]

    runs = {r.job_type: r for r in offline_runs(tmp_path / "storage" / "wandb")}
    train, selection = runs["train"], runs["selection"]
    assert train.group == selection.group == "mnli-default-ckpt step100"
    assert train.config["cell_id"] == trial.cell_id  # the hash stays in the config
    assert set(train.tags) >= {"dataset:mnli", "format:default", "checkpoint:step100", "method:full", "grid:wb"}
    assert train.config["command"] == "ptft run wb.yaml --set train.epochs=1" and train.config["grid"] == "wb"
    assert selection.name == "select mnli-default-ckpt step100"
    assert selection.summary["winner_lr"] == 3e-3 and selection.summary["val_loss/lr0.001"] == 2.0


def test_model_artifacts_are_logged_only_when_asked(tmp_path):
    import dataclasses

    from ray_jobs.wandb_runs import log_selection, settings_for
    from tests.ray_jobs.wandb_files import records

    plan = _plan(tmp_path)
    trial = plan.trials[0]
    cell = plan.cell(trial.cell_id)
    model_dir = tmp_path / "winner-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    record = {"metric": "val_loss", "winner": {"trial_id": trial.trial_id, "lr": 3e-3, "val_loss": 1.5}}

    def artifacts(log_models: bool, where: str) -> list[str]:
        settings = dataclasses.replace(settings_for(plan.spec, str(tmp_path / where)), log_models=log_models)
        log_selection(settings, plan, cell, record, model_dir=str(model_dir))
        (run_dir,) = (tmp_path / where / "wandb").glob("offline-run-*")
        (log,) = run_dir.glob("run-*.wandb")
        return [r.artifact.name for r in records(log) if r.WhichOneof("record_type") == "artifact"]

    assert artifacts(False, "off") == []
    assert artifacts(True, "on") == [f"model-{cell.cell_id}"]


def test_an_eval_runs_sample_table_is_bounded(tmp_path):
    import json

    from evals.results import ResultRecord
    from ray_jobs.eval_fanout import SAMPLE_ROWS, sample_table

    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps({"example_id": str(i), "prediction": "yes", "score": 1.0,
                                               "candidates": ["yes", "no"]}) + "\n" for i in range(50)))
    record = ResultRecord(base_model="m", checkpoint="c", eval_dataset="rte", eval_format="default", shots=0,
                          metric="accuracy", value=1.0, std=0.0, n=50, predictions=str(predictions))
    table = sample_table(record)
    assert len(table.data) == SAMPLE_ROWS and table.columns == ["example_id", "prediction", "score", "candidates"]
    assert table.data[0][3] == '["yes", "no"]'  # nested values as JSON text
