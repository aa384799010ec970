"""Fine-tuning methods through the real trainer on the tiny OLMo: LoRA, prompt tuning, P-tuning."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import torch
from pydantic import TypeAdapter

from ptft.core.layout import TrainOutput
from tests.training import Interrupt, InterruptingReporter
from trainers.config import TrainConfig
from trainers.methods import LoraMethod, Method
from trainers.sft import LocalReporter, TrainJob, train_worker

METHODS = {
    "lora": {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
    "prompt_tuning": {"name": "prompt_tuning", "virtual_tokens": 4},
    "p_tuning": {"name": "p_tuning", "virtual_tokens": 4, "encoder_hidden": 16},
}


def _method(name: str) -> Any:
    return TypeAdapter(Method).validate_python(METHODS[name])


def _job(model: str, out: str, method: Any, **config: Any) -> TrainJob:
    defaults = dict(epochs=1, batch_size=2, grad_accum=2, max_length=96, val_size=8, log_every=1,
                    zero_stage=2, seed=42, packing=True, max_steps=4, checkpoint_every=2)
    return TrainJob(trial_id="trial", cell_id="cell", model=model, dataset="mnli", data_source="mini",
                    data_limit=40, lr=1e-2, config=TrainConfig(**{**defaults, **config}), output_dir=out,
                    method=method)


def _tensors(path: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path)


def _adapter(job: TrainJob) -> dict[str, torch.Tensor]:
    return _tensors(os.path.join(TrainOutput(job.output_dir).adapter, "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def lora_run(dist_env, tiny_model_dir, tmp_path_factory):
    job = _job(tiny_model_dir, str(tmp_path_factory.mktemp("lora")), _method("lora"))
    reporter = LocalReporter(job)
    result = train_worker(job, reporter)
    return job, reporter, result


def test_lora_merged_model_differs_from_base_by_rank_r_in_targets_only(lora_run, tiny_model_dir):
    job, reporter, result = lora_run
    base = _tensors(os.path.join(tiny_model_dir, "model.safetensors"))
    merged = _tensors(os.path.join(TrainOutput(job.output_dir).model, "model.safetensors"))
    config = json.load(open(os.path.join(TrainOutput(job.output_dir).adapter, "adapter_config.json")))
    targets = set(config["target_modules"])
    assert config["target_modules"] == sorted(targets)  # written in a stable order
    assert merged.keys() == base.keys()
    changed = 0
    for name, weight in base.items():
        module = name.removesuffix(".weight")
        delta = (merged[name] - weight).double()
        if module in targets:
            rank = torch.linalg.matrix_rank(delta, rtol=1e-6).item()
            assert 1 <= rank <= job.method.r, (name, rank)  # lora_B moved off zero, within rank r
            changed += 1
        else:
            assert torch.equal(merged[name], weight), name  # frozen: bit-identical
    assert changed == len(targets) > 0
    assert result.manifest["parameters"]["trainable"] < result.manifest["parameters"]["total"] / 5
    assert reporter.history[-1]["trainable_parameters"] == result.manifest["parameters"]["trainable"]


def test_lora_merged_model_loads_with_plain_from_pretrained(lora_run):
    from transformers import AutoModelForCausalLM

    job, _, result = lora_run
    model = AutoModelForCausalLM.from_pretrained(TrainOutput(job.output_dir).model, local_files_only=True)
    assert not hasattr(model, "peft_config")
    manifest = result.manifest
    assert set(manifest["model_files"]) >= {"config.json", "model.safetensors"}
    assert "adapter_model.safetensors" in manifest["adapter_files"]


def test_lora_zero3_gathers_the_adapter_and_matches_zero2(lora_run, tmp_path):
    job2, straight, _ = lora_run
    job3 = job2.model_copy(update={"output_dir": str(tmp_path / "z3"),
                                   "config": job2.config.model_copy(update={"zero_stage": 3})})
    reporter = LocalReporter(job3)
    train_worker(job3, reporter)
    assert [m["loss"] for m in reporter.history] == pytest.approx([m["loss"] for m in straight.history], rel=1e-5)
    a, b = _adapter(job2), _adapter(job3)
    assert a.keys() == b.keys() and a
    for name in a:
        assert a[name].numel() > 0, name  # ZeRO-3 peers would ship empty tensors without the gather
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_resume_mid_run_matches_uninterrupted(name, dist_env, tiny_model_dir, tmp_path):
    straight_job = _job(tiny_model_dir, str(tmp_path / "straight"), _method(name))
    straight = LocalReporter(straight_job)
    train_worker(straight_job, straight)
    job = straight_job.model_copy(update={"output_dir": str(tmp_path / "resumed")})
    with pytest.raises(Interrupt):
        train_worker(job, InterruptingReporter(job, at=2))
    resumed = LocalReporter(job)
    train_worker(job, resumed)
    assert resumed.history[0]["step"] == 3
    by_step = {m["step"]: m for m in straight.history}
    for m in resumed.history:
        assert m["loss"] == pytest.approx(by_step[m["step"]]["loss"], rel=1e-6, abs=1e-7)
        assert m["lr"] == pytest.approx(by_step[m["step"]]["lr"], rel=1e-9)
    a, b = _adapter(straight_job), _adapter(job)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
    # The training checkpoint holds only what trains.
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    trained = get_fp32_state_dict_from_zero_checkpoint(os.path.join(job.output_dir, "checkpoints"),
                                                       exclude_frozen_parameters=True)
    assert trained and all(("lora_" in k) or ("prompt_encoder" in k) for k in trained), sorted(trained)[:5]


@pytest.mark.parametrize("name", ["prompt_tuning", "p_tuning"])
def test_prompt_methods_train_only_the_prompt(name, dist_env, tiny_model_dir, tmp_path):
    job = _job(tiny_model_dir, str(tmp_path / name), _method(name), max_steps=2)
    result = train_worker(job)
    out = TrainOutput(job.output_dir)
    assert not os.path.exists(out.model)  # a prompt cannot be merged into weights
    from peft import AutoPeftModelForCausalLM

    model = AutoPeftModelForCausalLM.from_pretrained(out.adapter)
    base = _tensors(os.path.join(tiny_model_dir, "model.safetensors"))
    for key, weight in model.get_base_model().state_dict().items():
        if key in base:
            assert torch.equal(weight, base[key]), key
    prompt_numel = job.method.virtual_tokens * model.get_base_model().config.hidden_size
    trainable = result.manifest["parameters"]["trainable"]
    # prompt tuning trains the virtual embeddings alone; P-tuning also its encoder
    assert trainable == prompt_numel if name == "prompt_tuning" else trainable > prompt_numel


@pytest.mark.parametrize("name", ["prompt_tuning", "p_tuning"])
def test_virtual_token_forward_equals_peft_per_example_and_packed(name, tiny_model_dir):
    """Our forward (placeholders per example) equals peft's prepend for one example, and a packed row
    of two examples scores each exactly as alone."""
    from transformers import AutoModelForCausalLM

    from trainers.adapters import VIRTUAL_ID, apply_method
    from trainers.loss import token_losses

    torch.manual_seed(0)
    method = _method(name)
    n = method.virtual_tokens
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    wrapped = apply_method(model, method, tokenizer_path=tiny_model_dir).eval()
    first, second = [5, 9, 14, 3, 7], [11, 4, 8]
    labels_first = [-100, -100, -100, 3, 7]
    ids = torch.tensor([first])
    reference = wrapped.peft_model(input_ids=ids, labels=torch.tensor([labels_first])).loss

    def row(tokens: list[int]) -> tuple[list[int], list[int]]:
        return [VIRTUAL_ID] * n + tokens, list(range(n + len(tokens)))

    ours_ids, ours_pos = row(first)
    logits = wrapped(input_ids=torch.tensor([ours_ids]), position_ids=torch.tensor([ours_pos])).logits
    losses = token_losses(logits, torch.tensor([[-100] * n + labels_first]))
    assert (losses.sum() / 2).item() == pytest.approx(reference.item(), abs=1e-5)

    a_ids, a_pos = row(first)
    b_ids, b_pos = row(second)
    packed = wrapped(input_ids=torch.tensor([a_ids + b_ids]), position_ids=torch.tensor([a_pos + b_pos])).logits
    alone_b = wrapped(input_ids=torch.tensor([b_ids]), position_ids=torch.tensor([b_pos])).logits
    torch.testing.assert_close(packed[0, len(a_ids):], alone_b[0], rtol=1e-4, atol=1e-4)


def test_flops_of_frozen_base_and_lora_adapters():
    from trainers.metrics import FlopsModel

    full = FlopsModel(matmul_params=1000, layers=2, heads=2, head_dim=4)
    lora = full.for_method(frozen_base=True, adapter_matmul_params=50)
    prompt = full.for_method(frozen_base=True, adapter_matmul_params=0)
    attention = 12.0 * 2 * 2 * 4 * 10**2
    assert full.example_flops(10) == 6 * 1000 * 10 + attention
    assert lora.example_flops(10) == (4 * 1000 + 6 * 50) * 10 + attention
    assert prompt.example_flops(10) == 4 * 1000 * 10 + attention


def test_bad_method_values_name_the_field():
    with pytest.raises(ValueError, match="r"):
        LoraMethod(r=0)
    with pytest.raises(ValueError, match="target_modules"):
        LoraMethod(target_modules="everything")
    with pytest.raises(ValueError, match="no 'attention' preset"):
        LoraMethod(target_modules="attention").resolved_targets("mamba")


def test_flops_count_a_tied_head_once_as_a_matmul():
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainers.metrics import FlopsModel

    def n(tied: bool) -> int:
        config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                             num_attention_heads=4, tie_word_embeddings=tied)
        return FlopsModel.from_model(LlamaForCausalLM(config)).matmul_params

    # Untied: the input embedding (a lookup) is left out and the head (128 x 32) counted; tied: the same.
    assert n(tied=True) == n(tied=False)
