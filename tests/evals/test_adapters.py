"""Adapters in the batched engine: prompt-tuned and P-tuned models scored through their virtual tokens
equal a one-example forward through peft; a LoRA adapter scores as its merged model; the cache knows
the adapter."""

from __future__ import annotations

import os

import pytest
import torch

from evals.generation import generate
from evals.loglikelihood import loglikelihood, next_token_logprobs
from evals.model_loading import load_model
from evals.requests import GenerationRequest, LoglikelihoodRequest, NextTokenRequest

from .test_engine import CANDIDATES, CONTEXTS, SHARED

VIRTUAL = 5


def _save_adapter(base_dir: str, out: str, kind: str) -> str:
    import peft
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if kind == "lora":
        config = peft.LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False,
                                 task_type="CAUSAL_LM")
    elif kind == "prompt_tuning":
        config = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=VIRTUAL,
                                         prompt_tuning_init=peft.PromptTuningInit.RANDOM)
    else:
        config = peft.PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=VIRTUAL,
                                          encoder_hidden_size=16)
    wrapped = peft.get_peft_model(model, config)
    if kind != "lora":  # random, clearly non-zero prompts: the test must see them
        for name, param in wrapped.named_parameters():
            if param.requires_grad:
                with torch.no_grad():
                    param.normal_(0.0, 1.0 if "embedding" in name else 0.3)
    wrapped.save_pretrained(out)
    return out


@pytest.fixture(scope="module", params=["prompt_tuning", "p_tuning"])
def prompted(request, tiny_model_dir, tmp_path_factory):
    adapter = _save_adapter(tiny_model_dir, str(tmp_path_factory.mktemp(request.param)), request.param)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, adapter).eval()
    lm = load_model(tiny_model_dir, precision="fp32", device="cpu", adapter=adapter)
    return lm, reference, adapter


def _reference_logits(reference, ids: list[int]) -> torch.Tensor:
    """peft's own forward (virtual tokens prepended), the virtual positions' logits dropped."""
    with torch.no_grad():
        return reference(input_ids=torch.tensor([ids])).logits[0, VIRTUAL:]


def _reference_loglikelihood(lm, reference, context: str, continuation: str) -> float:
    stripped = context.rstrip()
    continuation = context[len(stripped):] + continuation
    context_ids = lm.tokenizer(stripped)["input_ids"]
    whole = lm.tokenizer(stripped + continuation)["input_ids"]
    logprobs = torch.log_softmax(_reference_logits(reference, whole).double(), dim=-1)
    return sum(float(logprobs[i - 1, whole[i]]) for i in range(len(context_ids), len(whole)))


def test_virtual_prefix_is_loaded_and_takes_positions(prompted, tiny_lm):
    lm, _, _ = prompted
    assert lm.prefix_length == VIRTUAL and lm.virtual_prefix.abs().sum() > 0
    assert lm.max_length == tiny_lm.max_length - VIRTUAL


@pytest.mark.parametrize("contexts", [CONTEXTS, SHARED], ids=["plain", "shared-prefix"])
def test_loglikelihood_through_virtual_tokens_matches_peft(prompted, contexts):
    lm, reference, _ = prompted
    requests = [LoglikelihoodRequest(c, CANDIDATES) for c in contexts]
    for batch_size in (1, 4):
        answers = loglikelihood(lm, requests, batch_size=batch_size)
        for request, answer in zip(requests, answers, strict=True):
            expected = [_reference_loglikelihood(lm, reference, request.context, c) for c in request.continuations]
            assert answer.loglikelihoods == pytest.approx(expected, abs=1e-4)


def test_next_token_and_generation_through_virtual_tokens_match_peft(prompted):
    lm, reference, _ = prompted
    token_ids = (5, 17, 222)
    answers = next_token_logprobs(lm, [NextTokenRequest(c, token_ids) for c in SHARED], batch_size=3)
    for context, (logprobs, _) in zip(SHARED, answers, strict=True):
        ids = lm.tokenizer(context)["input_ids"]
        full = torch.log_softmax(_reference_logits(reference, ids)[-1].float(), -1)
        assert logprobs == pytest.approx(full[list(token_ids)].tolist(), abs=1e-4)

    def greedy(context: str, steps: int) -> str:
        ids, out = lm.tokenizer(context)["input_ids"], []
        for _ in range(steps):
            token = int(_reference_logits(reference, ids + out)[-1].argmax())
            if token == lm.eos_id:
                break
            out.append(token)
        return lm.tokenizer.decode(out, skip_special_tokens=True)

    expected = [greedy(c, 8) for c in CONTEXTS]
    outputs = generate(lm, [GenerationRequest(c, (), 8) for c in CONTEXTS], batch_size=4)
    assert [o.text for o in outputs] == expected


def test_lora_adapter_scores_as_its_merged_model(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = _save_adapter(tiny_model_dir, str(tmp_path / "lora"), "lora")
    merged_dir = str(tmp_path / "merged")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    PeftModel.from_pretrained(base, adapter).merge_and_unload().save_pretrained(merged_dir)
    with_adapter = load_model(tiny_model_dir, precision="fp32", device="cpu", adapter=adapter)
    merged = load_model(merged_dir, precision="fp32", device="cpu", tokenizer=with_adapter.tokenizer)
    plain = load_model(tiny_model_dir, precision="fp32", device="cpu")
    requests = [LoglikelihoodRequest(c, CANDIDATES) for c in SHARED]
    a, b = loglikelihood(with_adapter, requests, batch_size=4), loglikelihood(merged, requests, batch_size=4)
    c = loglikelihood(plain, requests, batch_size=4)
    for x, y, z in zip(a, b, c, strict=True):
        assert x.loglikelihoods == pytest.approx(y.loglikelihoods, abs=1e-4)
        assert x.loglikelihoods != pytest.approx(z.loglikelihoods, abs=1e-3)  # the adapter does something


def test_eval_cache_key_covers_the_adapter_and_its_base(prompted, tiny_model_dir, tmp_path):
    from evals.config import EvalConfig
    from evals.jobs import EvalJob, ModelRef
    from evals.runner import evaluate_model

    _, _, adapter = prompted
    config = EvalConfig(limit=4, bootstrap_resamples=20, device="cpu", precision="fp32")
    job = EvalJob("rte", "default", 0, job_id="job")
    model = ModelRef.of(tiny_model_dir, adapter=adapter, model_kind="finetuned", train_dataset="rte",
                        method="prompt-5")
    [first] = evaluate_model(model, [job], config, str(tmp_path / "out"), data_source="mini", progress=False)
    inputs = first.extra["cache_inputs"]["model"]
    assert set(inputs) == {"base", "adapter_sha256"} and inputs["base"]["weights_sha256"]
    assert first.method == "prompt-5" and first.extra["adapter"] == adapter
    [again] = evaluate_model(model, [job], config, str(tmp_path / "out"), data_source="mini", progress=False)
    assert again.extra["cache_key"] == first.extra["cache_key"]
    # A changed adapter is a different model: its cached record no longer matches.
    changed = str(tmp_path / "changed")
    os.makedirs(changed)
    from safetensors.torch import load_file, save_file

    for name in os.listdir(adapter):
        data = open(os.path.join(adapter, name), "rb").read()
        open(os.path.join(changed, name), "wb").write(data)
    tensors = load_file(os.path.join(changed, "adapter_model.safetensors"))
    save_file({k: v + 0.5 for k, v in tensors.items()}, os.path.join(changed, "adapter_model.safetensors"))
    moved = ModelRef.of(tiny_model_dir, adapter=changed, model_kind="finetuned", train_dataset="rte",
                        method="prompt-5")
    [other] = evaluate_model(moved, [job], config, str(tmp_path / "out"), data_source="mini", progress=False)
    assert other.extra["cache_key"] != first.extra["cache_key"]
