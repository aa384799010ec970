"""A two-stage recipe on a real local Ray (slow): continual pre-training on a new corpus, then SFT, beside
a plain cell. Two recipes share the first stage, which trains once; a driver killed during the recipe
resumes without retraining the finished stage; each stage's model is evaluated and says where it came from."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.grid.selection import selected_winner
from ptft.study.plan import build_plan
from ptft.study.spec import load_spec
from tests.ray_jobs.conftest import write_spec

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CPT = {"kind": "continual_pt", "dataset": "recipes", "learning_rates": [2e-3], "max_steps": 4,
       "replay": {"dataset": "demo_pretrain", "ratio": 0.25}}
RECIPES = {"cpt-mnli": [CPT, {"kind": "sft", "datasets": ["mnli"]}],
           "cpt-xsum": [CPT, {"kind": "sft", "datasets": ["xsum"]}]}


@pytest.mark.timeout(1500)
def test_a_two_stage_recipe_shares_its_prefix_and_resumes_at_the_right_stage(tiny_checkpoints, tmp_path):
    import ray

    from evals.results import read_records
    from ray_jobs.grid import run_grid

    path = write_spec(tmp_path, tiny_checkpoints, name="recipes", eval_datasets=("mnli_matched", "xsum"),
                      recipes=RECIPES)
    plan = build_plan(load_spec(str(path)))
    layout = GridLayout(plan.spec.storage_root())
    cpt_cells = [c for c in plan.cells if c.objective.kind == "continual_pt"]
    assert len(cpt_cells) == 1 and sorted(cpt_cells[0].recipes) == ["cpt-mnli", "cpt-xsum"]
    stage2 = [t for t in plan.trials if t.stage == 2]
    assert sorted(t.train_dataset for t in stage2) == ["mnli", "xsum"]

    # A driver killed once the first stage is selected (during or before the second).
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", DS_ACCELERATOR="cpu",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    driver = subprocess.Popen([sys.executable, "-m", "ptft", "run", str(path)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and driver.poll() is None:
        if selected_winner(layout, cpt_cells[0].cell_id):
            break
        time.sleep(0.5)
    assert driver.poll() is None, "the driver ended before the first stage was selected"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    cpt_trial = next(t for t in plan.trials if t.cell_id == cpt_cells[0].cell_id)
    stamp = os.stat(layout.trial(cpt_trial.trial_id).completed).st_mtime_ns
    time.sleep(3)  # the killed driver's local Ray goes down with it

    try:
        report = run_grid(plan)
    finally:
        ray.shutdown()
    assert report.ok, report.trial_errors
    assert os.stat(layout.trial(cpt_trial.trial_id).completed).st_mtime_ns == stamp  # stage 1 not retrained
    assert report.trials_run <= len(plan.trials) - 1

    winner = selected_winner(layout, cpt_cells[0].cell_id)
    for trial in stage2:  # each second stage started from the first stage's winner
        manifest = storage.read_json(layout.trial(trial.trial_id).manifest)
        assert manifest["job"]["model"] == layout.trial(winner).model
        assert manifest["job"]["objective"]["kind"] == "sft"
    cpt_manifest = storage.read_json(layout.trial(cpt_trial.trial_id).manifest)
    assert cpt_manifest["job"]["objective"]["replay"] == {"corpus": "demo_pretrain", "ratio": 0.25}
    assert cpt_manifest["metrics"]["old_ppl"] > 0 and cpt_manifest["metrics"]["val_ppl"] > 0

    records = [r for key in os.listdir(layout.evals_root) for r in read_records(layout.evals(key).results)]
    kinds = {(r.objective, r.prior_stages, r.train_dataset) for r in records if r.model_kind == "finetuned"}
    assert kinds == {("sft", None, "mnli"), ("continual_pt", None, "recipes"),
                     ("sft", "continual_pt:recipes", "mnli"), ("sft", "continual_pt:recipes", "xsum")}
    assert os.path.exists(os.path.join(layout.analysis_dir, "report.html"))
