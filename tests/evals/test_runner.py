"""evaluate_model on the mini data: records, predictions, layout, the skip-if-done cache, errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest

import evals.runner as runner
from evals.config import EvalConfig
from evals.jobs import EvalJob, ModelRef
from evals.model_loading import ModelLoadError, weights_hash
from evals.results import read_records
from ptft.tasks import UnknownTaskError

CONFIG = EvalConfig(limit=6, batch_size=4, max_new_tokens=8, bootstrap_resamples=200)
JOBS = [
    EvalJob("mnli_matched", "default", 2),
    EvalJob("mnli_matched", "default", 2, mode="faithful"),
    EvalJob("xsum", "instruct", 1),
    EvalJob("arc_easy", "default", 1, job_id="arc-easy-custom-id"),
]


@pytest.fixture(scope="module")
def first_run(tiny_model_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("eval-out"))
    model = ModelRef.of(tiny_model_dir, checkpoint="tiny", checkpoint_step=10)
    records = runner.evaluate_model(model, JOBS, CONFIG, out, data_source="mini", progress=False)
    return model, out, records


def test_records_and_layout(first_run):
    model, out, records = first_run
    assert [r.eval_dataset for r in records] == [j.dataset for j in JOBS]
    assert [r.mode for r in records] == ["fixed", "faithful", "fixed", "fixed"]
    assert [r.metric for r in records] == ["accuracy", "accuracy", "rougeL", "acc"]
    assert records[3].job_id == "arc-easy-custom-id"
    for record in records:
        assert record.source == "ptft" and record.n == 6 and record.checkpoint == "tiny"
        assert record.checkpoint_step == 10 and record.model_kind == "base"
        assert record.ci_low <= record.value <= record.ci_high and record.std is not None
        assert record.bootstrap_seed == CONFIG.bootstrap_seed and record.engine_version
        assert record.template_checksum and record.extra["cache_key"]
        assert os.path.exists(os.path.join(out, "records", f"{record.job_id}.json"))
        rows = [json.loads(line) for line in open(record.predictions)]
        assert len(rows) == 6
        assert {"example_id", "prompt", "prediction", "gold", "score"} <= set(rows[0])
    assert "acc_norm" in records[3].extra["secondary_metrics"]
    mc_row = json.loads(open(records[3].predictions).readline())
    assert all({"continuation", "loglikelihood"} <= set(c) for c in mc_row["candidates"])
    assert {r.job_id for r in read_records(os.path.join(out, "results.jsonl"))} == {r.job_id for r in records}


def test_second_run_recomputes_nothing(first_run, monkeypatch):
    model, out, records = first_run

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded although every job is cached")

    monkeypatch.setattr(runner, "load_model", no_loading)
    again = runner.evaluate_model(model, JOBS, CONFIG, out, data_source="mini", progress=False)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in records]


def test_changed_template_checksum_recomputes(first_run, tmp_path, monkeypatch):
    model, out, records = first_run
    out_copy = str(tmp_path / "copy")
    shutil.copytree(out, out_copy)
    real_build = runner.build_eval_set

    def changed(job, *args, **kwargs):
        eval_set = real_build(job, *args, **kwargs)
        if job.dataset == "xsum":
            return dataclasses.replace(eval_set, checksum=eval_set.checksum + "-edited")
        return eval_set

    loads = []
    real_load = runner.load_model
    monkeypatch.setattr(runner, "build_eval_set", changed)
    monkeypatch.setattr(runner, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    again = runner.evaluate_model(model, JOBS, CONFIG, out_copy, data_source="mini", progress=False)
    assert len(loads) == 1
    assert again[2].template_checksum.endswith("-edited")
    assert again[2].extra["cache_key"] != records[2].extra["cache_key"]
    assert [r.to_dict() for i, r in enumerate(again) if i != 2] == [
        r.to_dict() for i, r in enumerate(records) if i != 2]
    assert len(read_records(os.path.join(out_copy, "results.jsonl"))) == len(JOBS)


def test_finetuned_identity_in_records(tiny_model_dir, tmp_path):
    model = ModelRef.of(tiny_model_dir, model_kind="finetuned", checkpoint="1000", checkpoint_step=1000,
                     train_dataset="mnli", train_format="default", lr=2e-6, trial_id="t1", epochs=3)
    [record] = runner.evaluate_model(model, [EvalJob("rte", "default", 0)], CONFIG.model_copy(
        update={"limit": 3}), str(tmp_path), data_source="mini", progress=False)
    assert (record.model_kind, record.train_dataset, record.lr, record.trial_id, record.epochs) == (
        "finetuned", "mnli", 2e-6, "t1", 3)


def test_weights_hash_follows_the_weights(tiny_model_dir, tmp_path):
    copy = str(tmp_path / "model")
    shutil.copytree(tiny_model_dir, copy)
    assert weights_hash(copy) == weights_hash(tiny_model_dir)
    with open(os.path.join(copy, "config.json"), "a") as f:
        f.write(" ")
    assert weights_hash(copy) != weights_hash(tiny_model_dir)


def test_job_errors_come_before_loading(tiny_model_dir, tmp_path):
    model = ModelRef(tiny_model_dir)
    with pytest.raises(UnknownTaskError, match="did you mean 'mnli_matched'"):
        runner.evaluate_model(model, [EvalJob("mnli_matchd")], CONFIG, str(tmp_path), "mini", False)
    with pytest.raises(ValueError, match="format 'instruct' is not supported"):
        runner.evaluate_model(model, [EvalJob("arc_easy", "instruct")], CONFIG, str(tmp_path), "mini", False)
    with pytest.raises(ValueError, match="training-only"):
        runner.evaluate_model(model, [EvalJob("tulu")], CONFIG, str(tmp_path), "mini", False)


def test_model_that_does_not_load(tmp_path):
    missing = ModelRef(str(tmp_path / "no-such-model"), revision="step1000-tokens4B")
    with pytest.raises(ModelLoadError, match="no-such-model.*step1000-tokens4B"):
        runner.evaluate_model(missing, [EvalJob("mnli_matched")], CONFIG, str(tmp_path), "mini", False)


def test_model_in_object_storage_is_copied_once_and_scored(tiny_model_dir, tmp_path, monkeypatch):
    """A trial's model under an `s3://` storage root takes this path; `file://` runs it through pyarrow here."""
    from ptft.core import storage

    remote_dir = tmp_path / "bucket" / "trials" / "t9" / "model"
    shutil.copytree(tiny_model_dir, remote_dir)
    cache = tmp_path / "cache"
    monkeypatch.setenv("PTFT_MODEL_CACHE", str(cache))
    downloads = []
    real_download = storage.download_dir
    monkeypatch.setattr(storage, "download_dir",
                        lambda uri, *rest: (downloads.append(uri), real_download(uri, *rest)))
    model = ModelRef.of(f"file://{remote_dir}", model_kind="finetuned", train_dataset="mnli", lr=1e-5, trial_id="t9")
    config = CONFIG.model_copy(update={"limit": 3})
    [first] = runner.evaluate_model(model, [EvalJob("rte", "default", 0)], config, str(tmp_path / "out1"),
                                    data_source="mini", progress=False)
    [again] = runner.evaluate_model(model, [EvalJob("rte", "default", 0)], config, str(tmp_path / "out2"),
                                    data_source="mini", progress=False)
    assert downloads == [f"file://{remote_dir}"]  # the second evaluation reuses the local copy
    assert first.checkpoint == "model" and first.n == 3 and again.value == first.value
    assert first.extra["cache_inputs"]["model"]["weights_sha256"] == weights_hash(tiny_model_dir)
    (remote_dir / "config.json").write_text((remote_dir / "config.json").read_text() + "\n")
    runner.evaluate_model(model, [EvalJob("rte", "default", 0)], config, str(tmp_path / "out3"),
                          data_source="mini", progress=False)
    assert len(downloads) == 2  # the remote folder changed: fetched again


def test_missing_object_storage_model_is_a_load_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PTFT_MODEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelLoadError, match="empty or does not exist"):
        runner.evaluate_model(ModelRef(f"file://{tmp_path}/nothing"), [EvalJob("rte", "default", 0)], CONFIG,
                              str(tmp_path / "out"), data_source="mini", progress=False)
