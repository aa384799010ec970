"""DPO (trainers/dpo.py, docs/dpo.md): parity with TRL's loss and gradient, log 2 at the reference, a run
that learns the demo's preferences, exact resume that reads the stored reference, ZeRO-2 = ZeRO-3, LoRA's
reference is the adapter-disabled model, and bad pairs named before anything trains."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
import torch

from ptft.core import storage
from ptft.tasks import DataError
from ptft.tasks.preferences import preference_set
from tests.training import Interrupt, InterruptingReporter, model_weights
from trainers.config import TrainConfig
from trainers.dpo import (
    REFERENCE_FILE,
    DpoObjective,
    TokenizedPair,
    check_prompt_lengths,
    collate_pairs,
    reference_logps,
    sequence_logps,
    tokenize_pairs,
)
from trainers.examples import IGNORE_INDEX, TokenizedExample
from trainers.methods import LoraMethod
from trainers.objectives import DpoConfig, objective_for
from trainers.sft import LocalReporter, TrainJob, train_worker


def _job(model: str, out: str, objective: DpoConfig | None = None, method: Any = None, **config: Any) -> TrainJob:
    defaults = dict(epochs=10, batch_size=8, grad_accum=1, max_length=128, val_size=40, log_every=2,
                    zero_stage=0, seed=42, warmup_ratio=0.0, max_steps=6)
    return TrainJob(trial_id="dpo", cell_id="cell", model=model, dataset="demo_prefs", data_source="mini",
                    lr=1e-3, config=TrainConfig(**{**defaults, **config}), objective=objective or DpoConfig(),
                    output_dir=out, **({"method": method} if method is not None else {}))


def _pairs(tokenizer: Any, n: int, max_length: int = 128) -> tuple[TokenizedPair, ...]:
    pset = preference_set("demo_prefs", source="mini")
    return tokenize_pairs(pset, pset.pairs[:n], tokenizer, max_length).pairs


# ------------------------------------------------------------------------------------- parity with TRL
BETA = 0.5  # larger than the default so the random models' log-ratios move the loss well away from log 2
def _trl_loss_and_grads(model_dir: str, tokenizer: Any, ref_model: Any, loss_type: str, n: int):
    """TRL's DPOTrainer on the first n demo pairs: its tokenized pairs, loss and gradients."""
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig as TrlDpoConfig
    from trl import DPOTrainer

    from ptft.tasks.loading import read_jsonl
    from ptft.tasks.preferences import PREFERENCE_DIR

    rows = read_jsonl(str(PREFERENCE_DIR / "demo_prefs" / "train.jsonl")).rows[:n]
    dataset = datasets.Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    args = TrlDpoConfig(output_dir=os.path.join(model_dir, "trl-unused"), beta=BETA, loss_type=[loss_type],
                        bf16=False, use_cpu=True, gradient_checkpointing=False, report_to=[],
                        per_device_train_batch_size=n, max_length=None, learning_rate=1e-3)
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = DPOTrainer(model=policy, ref_model=ref_model, args=args, train_dataset=dataset,
                         processing_class=tokenizer)
    examples = [trainer.train_dataset[i] for i in range(n)]
    loss = trainer.compute_loss(trainer.model, trainer.data_collator(examples))
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in trainer.model.named_parameters()}
    return examples, loss.detach(), grads


def _different_reference(model_dir: str) -> Any:
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = base.config.__class__(**{**base.config.to_dict(), "initializer_range": 0.1})
    torch.manual_seed(1)  # same architecture, other (larger) weights: the log-ratios are far from 0
    return type(base)(config).eval()


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_loss_and_gradient_equal_trl(tiny_model_dir, tokenizer, loss_type):
    from transformers import AutoModelForCausalLM

    n = 4
    reference = _different_reference(tiny_model_dir)
    trl_examples, trl_loss, trl_grads = _trl_loss_and_grads(tiny_model_dir, tokenizer, reference, loss_type, n)

    ours = _pairs(tokenizer, n)
    for pair, trl in zip(ours, trl_examples, strict=True):  # the same tokens, split the same way
        for seq, response in ((pair.chosen, trl["chosen_ids"]), (pair.rejected, trl["rejected_ids"])):
            assert list(seq.input_ids) == trl["prompt_ids"] + response
            assert list(seq.labels) == [IGNORE_INDEX] * len(trl["prompt_ids"]) + response

    objective = DpoObjective(DpoConfig(beta=BETA, loss=loss_type))
    objective.reference = reference_logps(reference, ours, batch_size=2)
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    loss_sum, count = objective.loss(policy, objective.collate(list(ours), tokenizer.pad_token_id))
    loss = loss_sum / count
    loss.backward()

    assert abs(loss.item() - trl_loss.item()) < 1e-5, (loss.item(), trl_loss.item())
    # the reference really differs from the policy: every log-ratio is far from 0
    assert (reference_logps(policy, ours, batch_size=2) - objective.reference).abs().min() > 0.2
    worst = max((p.grad - trl_grads[name]).abs().max().item() for name, p in policy.named_parameters())
    assert worst < 1e-5
    assert max(g.abs().max().item() for g in trl_grads.values()) > 1e-3  # a gradient worth comparing


def test_reference_equal_to_policy_gives_log_2(tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    pairs = _pairs(tokenizer, 6)
    objective = DpoObjective(DpoConfig(beta=0.1))
    objective.reference = reference_logps(policy, pairs, batch_size=4)
    with torch.no_grad():
        loss_sum, count = objective.loss(policy, objective.collate(list(pairs), tokenizer.pad_token_id))
    assert count.item() == 6
    assert (loss_sum / count).item() == pytest.approx(math.log(2), abs=1e-6)


def test_logp_is_the_sum_over_response_tokens_only(tiny_model_dir, tokenizer):
    """Changing a prompt token's label never matters; the response's log-prob is a sum, not a mean."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    pair = _pairs(tokenizer, 1)[0]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([pair.chosen.input_ids])).logits[0].log_softmax(-1)
        expected = sum(logits[i - 1, pair.chosen.input_ids[i]].item() for i in range(1, len(pair.chosen))
                       if pair.chosen.labels[i] != IGNORE_INDEX)
        got = sequence_logps(model, collate_pairs([pair], tokenizer.pad_token_id).sequences)[0].item()
    assert got == pytest.approx(expected, abs=1e-4)
    assert sum(label != IGNORE_INDEX for label in pair.chosen.labels) >= 2  # response + eos


# --------------------------------------------------------------------------------------- runs
def test_dpo_run_learns_the_demo_preferences(dist_env, tiny_model_dir, tmp_path):
    job = _job(tiny_model_dir, str(tmp_path / "out"), max_steps=160, log_every=40)
    reporter = LocalReporter(job)
    result = train_worker(job, reporter)
    last = reporter.history[-1]
    assert last["reward_accuracy"] >= 0.75, reporter.history  # 0.875 here; chance is 0.5
    assert last["val_loss"] < math.log(2) - 0.15
    assert last["margin"] > 0 and last["reward_chosen"] > last["reward_rejected"]
    manifest = result.manifest
    assert manifest["val_loss"] == last["val_loss"]
    assert manifest["data"]["objective"] == "dpo"
    assert manifest["data"]["train"]["kept"] == 200 and manifest["data"]["val"]["kept"] == 40
    stored = storage.read_json(os.path.join(job.output_dir, REFERENCE_FILE))
    assert len(stored["chosen"]) == len(stored["rejected"]) == 240
    assert os.path.isdir(os.path.join(job.output_dir, "model"))


@pytest.fixture(scope="module")
def uninterrupted(dist_env, tiny_model_dir, tmp_path_factory) -> tuple[TrainJob, LocalReporter]:
    job = _job(tiny_model_dir, str(tmp_path_factory.mktemp("dpo-straight")), zero_stage=2, max_steps=8,
               log_every=1, checkpoint_every=3)
    reporter = LocalReporter(job)
    train_worker(job, reporter)
    return job, reporter


def test_resume_matches_uninterrupted_and_reads_the_stored_reference(uninterrupted, tmp_path):
    straight_job, straight = uninterrupted
    job = straight_job.model_copy(update={"output_dir": str(tmp_path / "resumed")})
    with pytest.raises(Interrupt):
        train_worker(job, InterruptingReporter(job, at=3))
    reference = os.path.join(job.output_dir, REFERENCE_FILE)
    before = (os.stat(reference).st_mtime_ns, open(reference, "rb").read())
    resumed = LocalReporter(job)
    train_worker(job, resumed)
    assert (os.stat(reference).st_mtime_ns, open(reference, "rb").read()) == before  # read, not recomputed

    assert resumed.history[0]["step"] == 4
    by_step = {m["step"]: m for m in straight.history}
    for m in resumed.history:
        assert m["loss"] == pytest.approx(by_step[m["step"]]["loss"], rel=1e-6, abs=1e-7)
        assert m["lr"] == pytest.approx(by_step[m["step"]]["lr"], rel=1e-9)
        assert m["reward_accuracy"] == by_step[m["step"]]["reward_accuracy"]
    assert resumed.history[-1]["val_loss"] == pytest.approx(straight.history[-1]["val_loss"], rel=1e-6)
    a = model_weights(os.path.join(straight_job.output_dir, "model"))
    b = model_weights(os.path.join(job.output_dir, "model"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-6)


def test_resume_without_the_stored_reference_refuses_to_recompute(uninterrupted, tmp_path):
    job = uninterrupted[0].model_copy(update={"output_dir": str(tmp_path / "lost")})
    with pytest.raises(Interrupt):
        train_worker(job, InterruptingReporter(job, at=3))
    os.remove(os.path.join(job.output_dir, REFERENCE_FILE))
    with pytest.raises(RuntimeError, match="never recomputed from a partially trained model"):
        train_worker(job)


def test_zero2_and_zero3_give_the_same_losses(dist_env, tiny_model_dir, tmp_path):
    runs = {}
    for stage in (2, 3):
        job = _job(tiny_model_dir, str(tmp_path / f"z{stage}"), zero_stage=stage, max_steps=4, log_every=1)
        runs[stage] = LocalReporter(job)
        train_worker(job, runs[stage])
    for m2, m3 in zip(runs[2].history, runs[3].history, strict=True):
        for key in ("loss", "val_loss", "margin", "logp_chosen"):
            assert m3[key] == pytest.approx(m2[key], rel=1e-5, abs=1e-6), key
    z2 = storage.read_json(str(tmp_path / "z2" / REFERENCE_FILE))
    z3 = storage.read_json(str(tmp_path / "z3" / REFERENCE_FILE))
    assert z3["chosen"] == pytest.approx(z2["chosen"], rel=1e-6)


# --------------------------------------------------------------------------------------- LoRA
def test_lora_reference_is_the_adapter_disabled_model(tiny_model_dir, tokenizer):
    """An adapter that already changes the outputs: the reference still equals the bare base model."""
    from transformers import AutoModelForCausalLM

    from trainers.adapters import apply_method

    pairs = _pairs(tokenizer, 6)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    expected = reference_logps(base, pairs, batch_size=4)
    lora = apply_method(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                        LoraMethod(r=4, alpha=8, dropout=0.0))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    lora.train()
    got = reference_logps(lora, pairs, batch_size=4)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert lora.training  # the training mode comes back after the reference pass
    with torch.no_grad():
        enabled = sequence_logps(lora.eval(), collate_pairs(list(pairs), 0).sequences).double()
    assert (enabled - torch.cat([expected[:, 0], expected[:, 1]])).abs().max() > 1e-2  # the adapter matters


def test_lora_run_under_zero3_stores_the_base_model_reference(dist_env, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    method = LoraMethod(r=4, alpha=8, dropout=0.0)
    job = _job(tiny_model_dir, str(tmp_path / "lora"), zero_stage=3, max_steps=4, log_every=2, method=method)
    reporter = LocalReporter(job)
    train_worker(job, reporter)
    stored = storage.read_json(os.path.join(job.output_dir, REFERENCE_FILE))
    objective = objective_for(job.objective)
    data = objective.load_data(job, AutoTokenizer.from_pretrained(tiny_model_dir))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    expected = reference_logps(base, (*data.train.pairs, *data.val.pairs), batch_size=8)
    assert stored["chosen"] == pytest.approx(expected[:, 0].tolist(), abs=1e-5)
    assert reporter.history[-1]["margin"] != 0  # the adapter trained away from its reference
    assert os.path.isdir(os.path.join(job.output_dir, "adapter"))


# --------------------------------------------------------------------------------------- bad input
def test_prompt_longer_than_max_length_names_its_line(tokenizer):
    with pytest.raises(DataError) as info:
        check_prompt_lengths("demo_prefs", "mini", tokenizer, max_length=12)
    err = info.value
    assert err.field == "prompt" and err.line == 1 and err.path.endswith("demo_prefs/train.jsonl")
    assert "max_length 12" in str(err)
    skipped = check_prompt_lengths("demo_prefs", "mini", tokenizer, max_length=12, bad_rows="skip")
    assert skipped.counts["skipped_bad_rows"] > 0
    assert skipped.counts["kept"] + skipped.counts["skipped_bad_rows"] == 240


def test_responses_cut_to_the_same_tokens_are_refused(tokenizer, tmp_path):
    """A folder source: responses that differ only past max_length would train nothing."""
    (tmp_path / "preference_pairs").mkdir()
    (tmp_path / "preference_pairs" / "train.jsonl").write_text(
        '{"prompt": "Question: what color is the sky?\\nAnswer:", "chosen": " the sky is blue.", '
        '"rejected": " the sky is black."}\n')
    pset = preference_set("preference_pairs", source=str(tmp_path))
    full = tokenize_pairs(pset, pset.pairs, tokenizer, 512).pairs[0]
    prompt = sum(label == IGNORE_INDEX for label in full.chosen.labels)
    shared = next(i for i, (a, b) in enumerate(zip(full.chosen.input_ids, full.rejected.input_ids, strict=False)) if a != b)
    assert shared > prompt + 1  # "the sky is" is shared
    with pytest.raises(DataError, match="identical to chosen within max_length") as info:
        tokenize_pairs(pset, pset.pairs, tokenizer, shared)
    assert info.value.line == 1 and info.value.field == "rejected"
    assert tokenize_pairs(pset, pset.pairs, tokenizer, shared + 1).counts["truncated"] == 1


def test_prompt_methods_are_refused(tiny_model_dir, tokenizer, tmp_path):
    from trainers.methods import PromptTuningMethod

    job = _job(tiny_model_dir, str(tmp_path), method=PromptTuningMethod(virtual_tokens=4, init="random"))
    with pytest.raises(ValueError, match="not supported; use full or lora"):
        objective_for(job.objective).load_data(job, tokenizer)


def test_tokenized_pairs_train_only_the_response_and_eos(tokenizer):
    pair = _pairs(tokenizer, 1)[0]
    for seq, text in ((pair.chosen, " contradiction"), (pair.rejected, " neutral")):
        targets = [i for i, label in zip(seq.input_ids, seq.labels, strict=True) if label != IGNORE_INDEX]
        assert targets[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(targets[:-1]) == text
    assert pair.chosen.input_ids[:5] == pair.rejected.input_ids[:5]
    assert isinstance(pair.chosen, TokenizedExample)
