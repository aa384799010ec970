"""DeepSpeed config generation, the lr schedule, and the FLOPs/MFU formula."""

from __future__ import annotations

import pytest
import torch

from trainers.config import TrainConfig
from trainers.deepspeed_config import (
    deepspeed_config,
    linear_warmup_schedule,
    resolve_precision,
    warmup_steps,
)
from trainers.metrics import FlopsModel, peak_flops_for, throughput_metrics


def test_study_recipe_is_the_default():
    cfg = TrainConfig()
    ds = deepspeed_config(cfg, lr=2e-6, world_size=1, on_gpu=True)
    assert ds["train_batch_size"] == 8 and ds["gradient_accumulation_steps"] == 8
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert ds["bf16"]["enabled"] is True
    assert ds["optimizer"] == {"type": "AdamW", "params": {"lr": 2e-6, "betas": [0.9, 0.999], "eps": 1e-8,
                                                           "weight_decay": 0.0}}
    assert warmup_steps(cfg, 2250) == 67  # docs/study.md §4: 2,250 steps, 67 warmup


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_cpu_config_uses_fp32_and_a_client_optimizer(stage):
    cfg = TrainConfig(zero_stage=stage, batch_size=2, grad_accum=3, grad_clip=None)
    ds = deepspeed_config(cfg, lr=1e-3, world_size=2, on_gpu=False)
    assert ds["train_batch_size"] == 12 and ds["gradient_clipping"] == 0.0
    assert ds["bf16"]["enabled"] is False and "optimizer" not in ds
    assert ds["zero_allow_untested_optimizer"] is True
    assert resolve_precision("auto", on_gpu=False) == "fp32" and resolve_precision("bf16", False) == "bf16"


def test_linear_schedule_matches_transformers():
    from transformers import get_linear_schedule_with_warmup

    def lrs(make):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make(opt)
        out = []
        for _ in range(20):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    ours = lrs(linear_warmup_schedule(total_steps=20, warmup=3))
    reference = lrs(lambda opt: get_linear_schedule_with_warmup(opt, 3, 20))
    assert ours == pytest.approx(reference)


def test_flops_formula_and_peak_table():
    fm = FlopsModel(matmul_params=1_000, layers=2, heads=4, head_dim=8)
    assert fm.example_flops(10) == 6 * 1_000 * 10 + 12 * 2 * 4 * 8 * 10 * 10
    assert peak_flops_for("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops_for("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops_for("NVIDIA H200") == 989e12 and peak_flops_for("NVIDIA L40S") == 362e12
    assert peak_flops_for("NVIDIA A10G") == 125e12 and peak_flops_for("Tesla T4") is None
    m = throughput_metrics(real_tokens=800, padded_tokens=1000, flops=4e12, seconds=2.0, world_size=2,
                           peak_flops=1e12)
    assert m["tokens_per_s"] == 400 and m["tokens_per_s_padded"] == 500 and m["mfu"] == 1.0
    assert throughput_metrics(1, 1, 1.0, 1.0, 1, None)["mfu"] is None


def test_flops_model_reads_olmo(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    fm = FlopsModel.from_model(model)
    total = sum(p.numel() for p in model.parameters())
    assert fm.matmul_params == total - model.get_input_embeddings().weight.numel()
    assert (fm.layers, fm.heads, fm.head_dim) == (2, 4, 16)
