"""Rejection sampling under object storage: the stage data is written to s3:// (a local S3 API), its
marker verifies there, the kept set is read through a local copy, and a trial's worker on another node
fetches that copy itself before it trains (`TrainJob.remote_folders`)."""

from __future__ import annotations

import os
import shutil

import pytest

from evals.rejection import RejectionConfig, is_done, kept_data_task, sample_and_score
from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.study.checkpoints import RevisionResolver
from ptft.study.plan import build_plan
from ptft.study.spec import load_spec
from tests.ray_jobs.conftest import write_spec

RS = {"kind": "rejection_sampling", "dataset": "tulu", "samples": 2, "temperature": 1.0, "seed": 1,
      "max_new_tokens": 6, "prompts": 4, "max_steps": 1}


def test_stage_data_in_object_storage(s3_bucket, tiny_checkpoints, tmp_path, monkeypatch, dist_env):
    from evals.model_loading import load_model
    from ray_jobs.train_trials import train_job
    from trainers.sft import train_worker

    monkeypatch.setenv("PTFT_DATA_CACHE", str(tmp_path / "cache"))
    path = write_spec(tmp_path, tiny_checkpoints, name="remote", datasets=(), recipes={"rs": [RS]})
    text = path.read_text().replace(f"storage: {tmp_path / 'storage'}", f"storage: {s3_bucket}/grid")
    path.write_text(text)
    plan = build_plan(load_spec(str(path)))  # an rs stage plans under s3:// storage
    layout = GridLayout(plan.spec.storage_root())
    (cell,) = [c for c in plan.cells if c.rejection is not None]
    stage = layout.stage_data(cell.cell_id)
    assert stage.startswith(f"{s3_bucket}/grid/")

    lm = load_model(str(tiny_checkpoints / "step100"))
    summary = sample_and_score("unused", cell.rejection, stage, source="mini", lm=lm)
    assert is_done(stage) and summary["samples"] == 8
    assert {name for name, _ in storage.list_files(stage)} == {"samples.jsonl", "kept.jsonl", "summary.json",
                                                               "DONE.json"}

    # the driver reads the kept set through its local copy, and tells the workers where to fetch it
    (trial,) = plan.trials_of(cell.cell_id)
    job = train_job(plan.spec, trial, layout, RevisionResolver(families=plan.spec.checkpoint_families()))
    (local,) = job.remote_folders
    assert job.remote_folders[local] == stage and local.startswith(str(tmp_path / "cache"))
    assert job.tasks[-1].source.folder == local and job.dataset == f"rs_{cell.cell_id}"
    kept_rows = storage.read_jsonl(os.path.join(local, "kept.jsonl"))
    assert kept_rows == storage.read_jsonl(storage.join(stage, "kept.jsonl")) and kept_rows

    # a worker on another node has no copy: it fetches one, then trains on it
    shutil.rmtree(local)
    result = train_worker(job.model_copy(update={"output_dir": str(tmp_path / "trial")}))
    assert os.path.isfile(os.path.join(local, "kept.jsonl")) and not result.skipped
    assert result.manifest["job"]["dataset"] == f"rs_{cell.cell_id}"

    # a marker whose file is gone from the bucket is not trusted
    storage.remove(storage.join(stage, "kept.jsonl"))
    assert not is_done(stage)
    with pytest.raises(ValueError, match="not there yet"):
        kept_data_task(stage, cell.cell_id, RejectionConfig(dataset="tulu"))
