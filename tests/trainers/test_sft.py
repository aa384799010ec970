"""The SFT recipe in-process on the tiny OLMo (world size 1, gloo): golden losses, resume, export."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from ptft.core.layout import TrainOutput
from tests.training import Interrupt, InterruptingReporter, model_weights
from trainers.config import TrainConfig
from trainers.sft import LocalReporter, TrainJob, train_worker

# Steps 1..5 of the golden job below (tiny OLMo seed 0, mnli mini rows, ZeRO 0, fp32 on CPU).
GOLDEN_LOSSES = [6.215825080871582, 5.8761162757873535, 5.616299867630005, 5.529426336288452, 5.404929161071777]


def _job(model: str, out: str, **config: Any) -> TrainJob:
    defaults = dict(epochs=1, batch_size=2, grad_accum=2, max_length=96, val_size=8, log_every=1,
                    zero_stage=0, seed=42)
    return TrainJob(trial_id="trial", cell_id="cell", model=model, dataset="mnli", data_source="mini",
                    data_limit=40, lr=1e-3, config=TrainConfig(**{**defaults, **config}), output_dir=out)


def test_golden_losses(dist_env, tiny_model_dir, tmp_path):
    job = _job(tiny_model_dir, str(tmp_path / "out"), max_steps=5)
    reporter = LocalReporter(job)
    result = train_worker(job, reporter)
    losses = [m["loss"] for m in reporter.history]
    assert [m["step"] for m in reporter.history] == [1, 2, 3, 4, 5]
    assert losses == pytest.approx(GOLDEN_LOSSES, rel=1e-5)
    assert result.manifest["steps"]["done"] == 5


@pytest.fixture(scope="module")
def uninterrupted(dist_env, tiny_model_dir, tmp_path_factory) -> tuple[TrainJob, LocalReporter]:
    """ZeRO-2 + packing, 2 epochs, checkpoint every 3 steps, run straight through."""
    job = _job(tiny_model_dir, str(tmp_path_factory.mktemp("straight")), zero_stage=2, packing=True,
               epochs=2, checkpoint_every=3, max_length=128)
    reporter = LocalReporter(job)
    train_worker(job, reporter)
    return job, reporter


def test_resume_mid_epoch_matches_uninterrupted(uninterrupted, tmp_path):
    straight_job, straight = uninterrupted
    job = straight_job.model_copy(update={"output_dir": str(tmp_path / "resumed")})
    with pytest.raises(Interrupt):
        train_worker(job, InterruptingReporter(job, at=3))
    assert not os.path.exists(TrainOutput(job.output_dir).completed)
    resumed = LocalReporter(job)
    train_worker(job, resumed)

    first_resumed = resumed.history[0]["step"]
    assert first_resumed == 4
    by_step = {m["step"]: m for m in straight.history}
    assert 0 < by_step[3]["epoch"] < 1  # the interruption falls mid-epoch
    for m in resumed.history:
        assert m["loss"] == pytest.approx(by_step[m["step"]]["loss"], rel=1e-6, abs=1e-7)
        assert m["lr"] == pytest.approx(by_step[m["step"]]["lr"], rel=1e-9)
    assert resumed.history[-1]["val_loss"] == pytest.approx(straight.history[-1]["val_loss"], rel=1e-6)
    a = model_weights(os.path.join(straight_job.output_dir, "model"))
    b = model_weights(os.path.join(job.output_dir, "model"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-6)


def test_export_loads_generates_and_has_a_manifest(uninterrupted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job, reporter = uninterrupted
    model_dir = os.path.join(job.output_dir, "model")
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = tokenizer("### Input_1: a man sleeps.\n ### Input_2: a man is awake.\n ### Inference:",
                       return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    new_tokens = out.shape[1] - prompt["input_ids"].shape[1]
    assert 1 <= new_tokens <= 4  # it may stop early: it learned to end the label with eos

    import json

    manifest = json.loads(open(TrainOutput(job.output_dir).manifest).read())
    assert manifest["trial_id"] == "trial" and manifest["cell_id"] == "cell" and manifest["lr"] == 1e-3
    assert manifest["val_loss"] == reporter.history[-1]["val_loss"]
    assert manifest["data"]["checksum"] and manifest["data"]["template_version"]
    assert manifest["data"]["train"]["kept"] + manifest["data"]["val"]["kept"] == 40
    assert {"truncated", "dropped_no_target"} <= manifest["data"]["train"].keys()
    assert manifest["tokens"]["real"] == manifest["data"]["train"]["tokens"] * 2  # two epochs, ws 1
    assert manifest["code_version"].startswith("0.1.0")
    assert manifest["metrics"]["mfu"] is None and manifest["metrics"]["tokens_per_s"] > 0
    assert os.path.exists(TrainOutput(job.output_dir).completed)


def test_completed_run_returns_the_stored_manifest(uninterrupted):
    job, _ = uninterrupted
    result = train_worker(job)
    assert result.skipped and result.manifest["trial_id"] == "trial"


def test_zero3_export_is_exact_and_matches_zero0(dist_env, tiny_model_dir, tmp_path):
    """ZeRO-3 gathers its shards for export: the weights equal the fp32 weights of its own checkpoint."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    job3 = _job(tiny_model_dir, str(tmp_path / "z3"), zero_stage=3, max_steps=3)
    train_worker(job3)
    exported = model_weights(os.path.join(job3.output_dir, "model"))
    from_checkpoint = get_fp32_state_dict_from_zero_checkpoint(os.path.join(job3.output_dir, "checkpoints"))
    for name, tensor in from_checkpoint.items():
        assert torch.equal(exported[name], tensor), name
    job0 = _job(tiny_model_dir, str(tmp_path / "z0"), zero_stage=0, max_steps=3)
    train_worker(job0)
    reference = model_weights(os.path.join(job0.output_dir, "model"))
    for name in reference:
        torch.testing.assert_close(exported[name], reference[name], rtol=1e-5, atol=1e-6)


def test_revision_is_forwarded_to_the_hub_loaders(dist_env, monkeypatch, tmp_path):
    import transformers

    seen = {}

    def fake(name, **kwargs):
        seen.update(kwargs, name=name)
        raise RuntimeError("stop")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    job = TrainJob(trial_id="t", cell_id="c", model="allenai/OLMo-1B-hf", revision="step1000-tokens4B",
                   dataset="mnli", lr=2e-6, output_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match="stop"):
        train_worker(job)
    assert seen == {"name": "allenai/OLMo-1B-hf", "revision": "step1000-tokens4B"}
