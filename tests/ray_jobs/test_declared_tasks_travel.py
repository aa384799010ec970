"""Declared tasks travel with the jobs: a fresh interpreter that never read the spec trains and evaluates a
task the spec's `tasks:` declared, from the `TrainJob` and `EvalRun` objects alone (as a Ray worker does)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
import yaml

from ptft.core.layout import GridLayout
from ptft.grid.ledger import read_state
from ptft.study.plan import build_plan
from ptft.study.preflight import preflight
from ptft.study.spec import load_spec
from ray_jobs.eval_fanout import pending_work
from ray_jobs.train_trials import train_job
from tests.ray_jobs.conftest import write_spec
from tests.study.conftest import REPO
from tests.tasks.conftest import isolated_registry  # noqa: F401  (the fixture, used below)
from trainers.job import TrainJob

pytestmark = pytest.mark.usefixtures("isolated_registry")

EXAMPLES = os.path.join(REPO, "configs", "tasks", "examples.yaml")

# What a worker does with what it is sent: nothing registered, then the job objects only.
WORKER = """
import pickle, sys
from ptft import tasks
assert "mini_summaries" not in tasks.list_tasks(), "a fresh interpreter knows no declared task"
with open(sys.argv[1], "rb") as f:
    jobs, runs = pickle.load(f)
from trainers.sft import train_worker
from ray_jobs.eval_fanout import evaluate_one_model
for job in jobs:
    print("trained", train_worker(job).output_dir)
for run in runs:
    print("evaluated", evaluate_one_model(run).records)
"""


def _in_a_fresh_interpreter(tmp_path, name: str, jobs: list, runs: list) -> str:
    payload = tmp_path / f"{name}.pkl"
    payload.write_bytes(pickle.dumps((jobs, runs)))
    # Not the rendezvous of a process group this pytest process may hold (tests/trainers' dist_env):
    # the fresh interpreter makes its own.
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DS_ACCELERATOR="cpu",
               WANDB_MODE="offline", OMP_WAIT_POLICY="PASSIVE")
    done = subprocess.run([sys.executable, "-c", WORKER, str(payload)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.timeout(600)
def test_a_declared_task_trains_and_evaluates_from_the_job_objects_alone(tiny_checkpoints, tmp_path):
    from evals.results import read_records

    path = write_spec(tmp_path, tiny_checkpoints, name="declared", datasets=("mini_summaries",),
                      eval_datasets=("mini_summaries",), lrs=(1e-3,), max_steps=2)
    raw = yaml.safe_load(path.read_text())
    raw["tasks"] = [EXAMPLES]
    raw["eval"]["models"] = "all"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    spec = load_spec(str(path))
    plan = build_plan(spec)
    preflight(plan)
    layout = GridLayout(spec.storage_root())
    from ptft.study.checkpoints import RevisionResolver

    resolver = RevisionResolver(families=spec.checkpoint_families())
    (trial,) = plan.trials
    job = train_job(spec, trial, layout, resolver)
    assert [d.name for d in job.tasks] == ["mini_summaries", "trivia_qa_em"]
    assert TrainJob.model_validate_json(job.model_dump_json()) == job  # it ships as JSON too
    base_runs = pending_work(plan, read_state(plan, layout), layout, resolver)
    assert [r.model.identity.model_kind for r in base_runs] == ["base"] and base_runs[0].tasks == spec.tasks

    out = _in_a_fresh_interpreter(tmp_path, "train", [job], base_runs)
    assert "trained" in out and "evaluated 1" in out
    (finetuned_run,) = pending_work(plan, read_state(plan, layout), layout, resolver)
    assert finetuned_run.model.identity.model_kind == "finetuned"
    assert "evaluated 1" in _in_a_fresh_interpreter(tmp_path, "eval", [], [finetuned_run])

    records = [r for run in (*base_runs, finetuned_run) for r in read_records(layout.evals(run.key).results)]
    assert sorted(r.model_kind for r in records) == ["base", "finetuned"]
    assert {(r.eval_dataset, r.metric) for r in records} == {("mini_summaries", "rougeL")}
    finetuned = next(r for r in records if r.model_kind == "finetuned")
    assert finetuned.train_dataset == "mini_summaries" and 0.0 <= finetuned.value <= 1.0
    # the record's template version is the declaration's: the one the plan's ids hashed
    from ptft import tasks

    assert finetuned.extra["cache_inputs"]["template_version"] == tasks.template_version(
        "mini_summaries", "default", "fixed")
