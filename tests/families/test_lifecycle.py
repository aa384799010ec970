"""Each family's tiny stand-in through ptft's real trainer and evaluator: train (ZeRO-2 on CPU), resume
from a mid-run checkpoint to the same losses and weights as an uninterrupted run, export a folder that
`from_pretrained` reloads (tied embeddings still tied, no pad token invented), and evaluate it."""

from __future__ import annotations

import os

import pytest
import torch

from ptft.core.layout import TrainOutput
from ptft.core.tiny import TINY_ARCHITECTURES
from tests.families.conftest import ARCHITECTURES, TIED
from tests.training import Interrupt, InterruptingReporter, model_weights
from trainers.config import TrainConfig
from trainers.sft import LocalReporter, TrainJob, train_worker

STEPS, CHECKPOINT_AT = 4, 2


def _job(model: str, out: str) -> TrainJob:
    config = TrainConfig(epochs=1, batch_size=2, grad_accum=2, max_length=96, val_size=8, log_every=1,
                         zero_stage=2, seed=42, max_steps=STEPS, checkpoint_every=CHECKPOINT_AT)
    return TrainJob(trial_id="trial", cell_id="cell", model=model, dataset="mnli", data_source="mini",
                    data_limit=40, lr=1e-3, config=config, output_dir=out)


@pytest.fixture(scope="module", params=ARCHITECTURES)
def trained(request, dist_env, tiny_family_model, tmp_path_factory) -> tuple[str, str, TrainJob, LocalReporter]:
    """(architecture, base folder, job, reporter) of one uninterrupted run."""
    arch = request.param
    base = tiny_family_model(arch)
    job = _job(base, str(tmp_path_factory.mktemp(f"straight-{arch}")))
    reporter = LocalReporter(job)
    train_worker(job, reporter)
    return arch, base, job, reporter


def test_trains_and_resumes_to_the_uninterrupted_run(trained, tmp_path):
    arch, _, straight_job, straight = trained
    losses = [m["loss"] for m in straight.history]
    assert [m["step"] for m in straight.history] == list(range(1, STEPS + 1))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], (arch, losses)

    job = straight_job.model_copy(update={"output_dir": str(tmp_path / "resumed")})
    with pytest.raises(Interrupt):
        train_worker(job, InterruptingReporter(job, at=CHECKPOINT_AT))
    assert not os.path.exists(TrainOutput(job.output_dir).completed)
    resumed = LocalReporter(job)
    train_worker(job, resumed)
    assert resumed.history[0]["step"] == CHECKPOINT_AT + 1
    by_step = {m["step"]: m for m in straight.history}
    for m in resumed.history:
        assert m["loss"] == pytest.approx(by_step[m["step"]]["loss"], rel=1e-6, abs=1e-7)
        assert m["lr"] == pytest.approx(by_step[m["step"]]["lr"], rel=1e-9)
    a = model_weights(os.path.join(straight_job.output_dir, "model"))
    b = model_weights(os.path.join(job.output_dir, "model"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-6)


def test_export_reloads_as_its_class_with_its_quirks(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    arch, base, job, _ = trained
    model_dir = TrainOutput(job.output_dir).model
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert type(model).__name__ == TINY_ARCHITECTURES[arch].model_class
    conventions = TINY_ARCHITECTURES[arch].tokenizer
    assert (tokenizer.pad_token is None) == (conventions.pad is None)  # the trainer invents no pad token
    assert (tokenizer("yes")["input_ids"][0] == tokenizer.bos_token_id) == conventions.adds_bos

    before = AutoModelForCausalLM.from_pretrained(base)
    embeddings, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert not torch.equal(before.get_input_embeddings().weight, embeddings)  # it trained
    if TIED[arch]:
        assert model.config.tie_word_embeddings and head is embeddings  # re-tied on load
        # ... and tied while it trained: DeepSpeed's own fp32 copy holds one matrix, the one exported
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        fp32 = get_fp32_state_dict_from_zero_checkpoint(os.path.join(job.output_dir, "checkpoints"))
        saved = model_weights(model_dir)
        embed_key = next(name for name, p in model.named_parameters() if p is embeddings)
        head_key = next(k for k in fp32 if k.endswith(("lm_head.weight", "embed_out.weight")))
        assert torch.equal(fp32[head_key], fp32[embed_key]) and torch.equal(saved[embed_key], fp32[embed_key])
        assert head_key not in saved  # saved once
    else:
        assert head is not embeddings and not torch.equal(head, embeddings)

    prompt = tokenizer("### Input_1: a man sleeps.\n ### Input_2: a man is awake.\n ### Inference:",
                       return_tensors="pt")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = model.generate(**prompt, max_new_tokens=3, do_sample=False, pad_token_id=pad)
    assert 1 <= out.shape[1] - prompt["input_ids"].shape[1] <= 3


def test_evaluates(trained, tmp_path):
    from evals.config import EvalConfig
    from evals.jobs import EvalJob, ModelRef
    from evals.runner import evaluate_model

    arch, _, job, _ = trained
    model = ModelRef.of(TrainOutput(job.output_dir).model, checkpoint=f"tiny-{arch}", checkpoint_step=STEPS)
    jobs = [EvalJob("mnli_matched", "default", 1), EvalJob("xsum", "instruct", 0)]
    config = EvalConfig(limit=3, batch_size=2, max_new_tokens=4, bootstrap_resamples=20)
    records = evaluate_model(model, jobs, config, str(tmp_path / "eval"), data_source="mini", progress=False)
    assert [(r.eval_dataset, r.metric, r.n) for r in records] == [("mnli_matched", "accuracy", 3),
                                                                   ("xsum", "rougeL", 3)]
    assert all(0.0 <= r.value <= 1.0 for r in records)
