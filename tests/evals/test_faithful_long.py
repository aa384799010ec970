"""Faithful mode feeds what the study fed (issue 20): all shots, no truncation, the stored dtype, the
study's decoded-text slice; fixed mode keeps its budget rule."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import evals.generation as generation
from evals.config import EvalConfig
from evals.jobs import EvalJob
from evals.model_loading import LoadedModel, resolve_dtype, stored_dtype
from evals.requests import GenerationRequest
from evals.runner import build_eval_set
from evals.scoring import score_eval_set

WINDOW = 64  # far shorter than a 4-shot mnli prompt of the mini data
CONFIG = EvalConfig(limit=3, batch_size=2, max_new_tokens=4, max_length=WINDOW)


@pytest.fixture()
def short_lm(tiny_lm):
    return LoadedModel(tiny_lm.model, tiny_lm.tokenizer, tiny_lm.device, tiny_lm.dtype,
                       max_length=WINDOW, window=WINDOW)


def _fed_lengths(lm):
    """Record, per forward, the highest position fed + 1 (the sequence length the model computed)."""
    seen: list[int] = []

    def hook(_module, args, kwargs):
        positions = kwargs.get("position_ids")
        if positions is not None:
            seen.append(int(positions.max()) + 1)

    return seen, lm.model.register_forward_pre_hook(hook, with_kwargs=True)


def _study_prompts(tokenizer, dataset: str, shots: int) -> list[str]:
    """The study's eval/predict.py prompt: prompt + completion + "\\n" of the file's first k items, then
    the item's prompt (docs/study.md §5.1), from the 0-shot faithful rendering."""
    items = build_eval_set(EvalJob(dataset, "default", 0), "faithful", CONFIG.model_copy(update={"limit": None}),
                           tokenizer, WINDOW, "mini").examples
    prefix = "".join(e.context + e.target + "\n" for e in items[:shots])
    return [prefix + e.context for e in items[:CONFIG.limit]]


def test_faithful_4shot_context_past_the_window_is_scored_whole(short_lm):
    tok = short_lm.tokenizer
    es = build_eval_set(EvalJob("mnli_matched", "default", 4), "faithful", CONFIG, tok, WINDOW, "mini")
    study = _study_prompts(tok, "mnli_matched", 4)
    assert [e.context for e in es.examples] == study  # all four shots, nothing cut
    assert all(e.shots_used == 4 and e.shots_dropped == 0 for e in es.examples)
    lengths = [len(tok(p)["input_ids"]) for p in study]
    assert min(lengths) > WINDOW
    seen, handle = _fed_lengths(short_lm)
    try:
        scored = score_eval_set(short_lm, es, "faithful", batch_size=2)
    finally:
        handle.remove()
    assert max(seen) == max(lengths)  # the whole study-shaped prompt, positions past the window included
    assert all(r["truncated_tokens"] == 0 and r["shots_used"] == 4 for r in scored.records)
    assert scored.counts["past_window"] == len(study)
    assert scored.counts["truncated_examples"] == 0


def test_faithful_generation_past_the_window_is_fed_whole(short_lm):
    tok = short_lm.tokenizer
    es = build_eval_set(EvalJob("xsum", "default", 4), "faithful", CONFIG, tok, WINDOW, "mini")
    lengths = [len(tok(e.context)["input_ids"]) for e in es.examples]
    assert all(e.shots_used == 4 for e in es.examples) and min(lengths) > WINDOW
    seen, handle = _fed_lengths(short_lm)
    try:
        scored = score_eval_set(short_lm, es, "faithful", batch_size=2, max_new_tokens=4)
    finally:
        handle.remove()
    assert max(seen) >= max(lengths)
    assert all(r["truncated_tokens"] == 0 for r in scored.records)
    assert scored.counts["past_window"] == len(es.examples)


def test_fixed_mode_keeps_the_budget_rule(short_lm):
    tok = short_lm.tokenizer
    es = build_eval_set(EvalJob("mnli_matched", "default", 4), "fixed", CONFIG, tok, WINDOW, "mini")
    assert all(e.shots_dropped > 0 for e in es.examples)
    assert es.counts["shots_dropped"] == sum(e.shots_dropped for e in es.examples) > 0
    assert es.counts["examples_with_dropped_shots"] == len(es.examples)
    seen, handle = _fed_lengths(short_lm)
    try:
        scored = score_eval_set(short_lm, es, "fixed", batch_size=2)
    finally:
        handle.remove()
    assert max(seen) <= WINDOW
    assert scored.counts["past_window"] == 0


def test_faithful_auto_dtype_is_the_checkpoint_dtype_even_on_gpu():
    assert resolve_dtype("auto", "cuda", "faithful", "float32") is torch.float32
    assert resolve_dtype("auto", "cuda:0", "faithful", "torch.float16") is torch.float16
    assert resolve_dtype("auto", "cpu", "faithful", "bfloat16") is torch.bfloat16
    assert resolve_dtype("auto", "cuda", "fixed", "float32") is torch.bfloat16  # fixed: as before
    assert resolve_dtype("auto", "cpu", "fixed", "bfloat16") is torch.float32
    assert resolve_dtype("fp32", "cuda", "faithful", "bfloat16") is torch.float32  # explicit wins
    assert resolve_dtype("auto", torch.device("cuda"), "fixed") is torch.bfloat16
    assert stored_dtype(SimpleNamespace(torch_dtype="float32")) == "float32"
    assert stored_dtype(SimpleNamespace(dtype=torch.bfloat16)) == "bfloat16"
    assert stored_dtype(SimpleNamespace()) is None


def test_faithful_text_is_the_study_slice_of_the_cleaned_full_decode(tiny_lm):
    tok = tiny_lm.tokenizer
    prompt = "The cat"
    prompt_ids = tok(prompt)["input_ids"]
    gen = tok(" sat 's mat .", add_special_tokens=False)["input_ids"]
    plain = tok.decode(gen, skip_special_tokens=True)
    assert plain == " sat 's mat ."  # transformers 5: no cleanup for BPE
    assert generation.faithful_text(tok, prompt, prompt_ids, gen) == " sat's mat."
    # A cleanup inside the prompt shifts the study's character slice: it eats the generation's first char.
    shifted = "A cat 's toy"
    assert generation.faithful_text(tok, shifted, tok(shifted)["input_ids"], gen) == "sat's mat."


def test_faithful_generate_returns_the_study_slice(tiny_lm, monkeypatch):
    tok = tiny_lm.tokenizer
    gen = tok(" sat .", add_special_tokens=False)["input_ids"]
    monkeypatch.setattr(generation, "_generate_batch",
                        lambda lm, contexts, requests, prefixes, pick=None: [(list(gen), "length") for _ in contexts])
    request = GenerationRequest("The cat", (), 8)
    [faithful] = generation.generate(tiny_lm, [request], faithful=True)
    [fixed] = generation.generate(tiny_lm, [request])
    assert faithful.text == " sat." and fixed.text == " sat ."
