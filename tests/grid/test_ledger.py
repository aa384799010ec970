"""The ledger and lr selection read storage markers only: checked on hand-written markers, no Ray."""

import json

import pytest

from ptft.core import storage
from ptft.core.layout import GridLayout, base_model_key, trial_model_key
from ptft.grid.ledger import read_state
from ptft.grid.selection import run_selection
from ptft.study.plan import build_plan
from ptft.study.spec import load_spec
from tests.ray_jobs.conftest import write_spec


@pytest.fixture
def plan(tmp_path):
    (tmp_path / "ck" / "step100").mkdir(parents=True)
    (tmp_path / "ck" / "step400").mkdir(parents=True)
    spec = write_spec(tmp_path, tmp_path / "ck", name="ledger", lrs=(1e-3, 3e-3, 1e-2), n_checkpoints=2,
                      eval_datasets=("mnli_matched", "rte"))
    return build_plan(load_spec(str(spec)))


def complete(layout, trial_id, val_loss):
    """A finished trial as the trainer leaves it: the model's files, a manifest listing them, COMPLETED."""
    out = layout.trial(trial_id)
    storage.atomic_write_text(storage.join(out.model, "config.json"), "{}")
    storage.atomic_write_bytes(storage.join(out.model, "model.safetensors"), b"w" * 64)
    storage.atomic_write_json(out.manifest, {"trial_id": trial_id, "val_loss": val_loss,
                                             "model_files": {"config.json": 2, "model.safetensors": 64}})
    storage.atomic_write_text(out.completed, "")


def test_fresh_grid_is_all_pending(plan):
    state = read_state(plan, GridLayout(plan.spec.storage_root()))
    assert set(state.trials.values()) == {"pending"}
    assert set(state.cells.values()) == {"pending"}
    base = [j for j in plan.eval_jobs if j.model_kind == "base"]
    assert all(state.evals[j.job_id] == "ready" for j in base)  # base evals need no training
    assert all(state.evals[j.job_id] == "waiting" for j in plan.eval_jobs if j.model_kind == "finetuned")
    assert not state.complete


def test_selection_picks_lowest_val_loss_and_records_every_lr(plan):
    layout = GridLayout(plan.spec.storage_root())
    cell = plan.cells[0]
    trials = plan.trials_of(cell.cell_id)
    for trial, loss in zip(trials, (2.0, 1.5, 3.0), strict=True):
        complete(layout, trial.trial_id, loss)
        storage.atomic_write_json(storage.join(layout.trial(trial.trial_id).root, "curve.json"),
                                  [{"step": 2, "val_loss": loss + 1}, {"step": 4, "val_loss": loss}])
    selected = run_selection(plan, layout)
    assert list(selected) == [cell.cell_id]  # the other cell is unfinished
    record = json.loads(open(layout.selection_file(cell.cell_id)).read())
    assert record["winner"]["trial_id"] == trials[1].trial_id and record["winner"]["lr"] == 3e-3
    assert [c["lr"] for c in record["candidates"]] == [1e-3, 3e-3, 1e-2]
    assert all(len(c["curve"]) == 2 for c in record["candidates"])

    state = read_state(plan, layout)
    assert state.cells[cell.cell_id] == "selected" and state.winners[cell.cell_id] == trials[1].trial_id
    assert state.cells[plan.cells[1].cell_id] == "pending"
    winner_jobs = [j for j in plan.eval_jobs if j.cell_id == cell.cell_id]
    assert winner_jobs and all(state.evals[j.job_id] == "ready" for j in winner_jobs)


def test_started_trials_and_done_evals(plan):
    layout = GridLayout(plan.spec.storage_root())
    trial = plan.trials[0]
    storage.atomic_write_json(storage.join(layout.train_run(trial.trial_id), "checkpoint_manager_snapshot.json"), {})
    job = next(j for j in plan.eval_jobs if j.model_kind == "base")
    storage.atomic_write_json(layout.evals(base_model_key(job.checkpoint)).record(job.job_id),
                              {"job_id": job.job_id, "value": 1.0})
    state = read_state(plan, layout)
    assert state.trials[trial.trial_id] == "started"
    assert state.cells[trial.cell_id] == "training"
    assert state.evals[job.job_id] == "done"


def test_early_stopped_trial_cannot_win_but_finishes_the_cell(plan):
    layout = GridLayout(plan.spec.storage_root())
    cell = plan.cells[0]
    a, b, c = plan.trials_of(cell.cell_id)
    complete(layout, a.trial_id, 2.0)
    complete(layout, b.trial_id, 2.5)
    storage.atomic_write_json(layout.trial(c.trial_id).early_stopped, {"val_loss": 0.1})
    record = run_selection(plan, layout)[cell.cell_id]
    assert record["winner"]["trial_id"] == a.trial_id
    assert read_state(plan, layout).trials[c.trial_id] == "early_stopped"


def test_model_keys_are_folder_safe():
    assert base_model_key("step1000-tokens4B") == "base-step1000-tokens4B"
    assert base_model_key("a/b c") == "base-a_b_c"
    assert trial_model_key("abc") == "trial-abc"


def test_a_storage_of_another_plan_version_is_refused_before_ray(plan, capsys):
    """Ids moved with PLAN_VERSION 2: an older grid's storage is named, not silently mixed with new ids."""
    import sys

    from ptft.cli.main import main
    from ptft.grid.ledger import StorageVersionError, check_plan_version
    from ptft.study.plan import PLAN_VERSION

    layout = GridLayout(plan.spec.storage_root())
    check_plan_version(layout)  # a fresh storage is fine
    storage.atomic_write_json(layout.plan_file, plan.to_json())
    check_plan_version(layout)  # so is one this version wrote
    old = plan.to_json()
    del old["plan_version"]  # what version 1 wrote
    storage.atomic_write_json(layout.plan_file, old)
    with pytest.raises(StorageVersionError, match=f"plan version 1; this ptft plans version {PLAN_VERSION}"):
        check_plan_version(layout)
    spec_path = f"{plan.spec.base_dir}/ledger.yaml"
    assert main(["run", spec_path]) == 2
    assert "holds a grid of plan version 1" in capsys.readouterr().err
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def _finish_cell(plan, layout):
    cell = plan.cells[0]
    for i, trial in enumerate(plan.trials_of(cell.cell_id)):
        complete(layout, trial.trial_id, 1.0 + i)
    run_selection(plan, layout)
    return cell, plan.trials_of(cell.cell_id)[0]  # the winner: lowest val_loss


def test_a_truncated_record_is_not_done_and_is_said(plan):
    layout = GridLayout(plan.spec.storage_root())
    job = next(j for j in plan.eval_jobs if j.model_kind == "base")
    record = layout.evals(base_model_key(job.checkpoint)).record(job.job_id)
    text = json.dumps({"job_id": job.job_id, "value": 0.5, "metric": "accuracy"})
    storage.atomic_write_text(record, text)
    assert read_state(plan, layout).evals[job.job_id] == "done"
    storage.atomic_write_text(record, text[: len(text) // 2])  # cut in half, as a crash or a full disk does
    state = read_state(plan, layout)
    assert state.evals[job.job_id] == "ready"  # evaluated again, not skipped
    assert any(record in p and "does not parse" in p for p in state.problems)
    storage.atomic_write_text(record, json.dumps({"job_id": "another-job", "value": 0.5}))
    assert read_state(plan, layout).evals[job.job_id] == "ready"


@pytest.mark.parametrize("damage", ["delete_model", "resize_weights", "delete_manifest"])
def test_a_completed_marker_whose_model_does_not_verify_retrains(plan, damage):
    import shutil

    from trainers.checkpointing import read_completed

    layout = GridLayout(plan.spec.storage_root())
    cell, winner = _finish_cell(plan, layout)
    out = layout.trial(winner.trial_id)
    winner_jobs = [j for j in plan.eval_jobs if j.cell_id == cell.cell_id]
    state = read_state(plan, layout)
    assert state.trials[winner.trial_id] == "done" and {state.evals[j.job_id] for j in winner_jobs} == {"ready"}
    assert read_completed(out.root) is not None
    if damage == "delete_model":
        shutil.rmtree(out.model)
    elif damage == "resize_weights":
        storage.atomic_write_bytes(storage.join(out.model, "model.safetensors"), b"w" * 10)
    else:
        storage.atomic_write_text(out.manifest, "{")
    state = read_state(plan, layout)
    assert state.trials[winner.trial_id] == "invalid"
    assert {state.evals[j.job_id] for j in winner_jobs} == {"waiting"}  # never evaluated from a missing model
    assert any(winner.trial_id in p for p in state.problems)
    assert read_completed(out.root) is None  # so the trainer trains it again instead of skipping


def test_a_truncated_selection_is_made_again(plan):
    layout = GridLayout(plan.spec.storage_root())
    cell, winner = _finish_cell(plan, layout)
    path = layout.selection_file(cell.cell_id)
    text = open(path).read()
    open(path, "w").write(text[: len(text) // 3])
    state = read_state(plan, layout)
    assert state.cells[cell.cell_id] == "training" and any(path in p for p in state.problems)
    assert run_selection(plan, layout)[cell.cell_id]["winner"]["trial_id"] == winner.trial_id  # rewritten
    assert read_state(plan, layout).cells[cell.cell_id] == "selected"


def test_a_truncated_early_stop_marker_runs_the_trial_again(plan):
    layout = GridLayout(plan.spec.storage_root())
    trial = plan.trials[0]
    storage.atomic_write_text(layout.trial(trial.trial_id).early_stopped, '{"val_loss": 1.')
    state = read_state(plan, layout)
    assert state.trials[trial.trial_id] == "pending" and any("does not parse" in p for p in state.problems)
