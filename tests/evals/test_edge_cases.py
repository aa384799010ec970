"""Engine edge cases found against lm-evaluation-harness's HF backend, each against a plain reference.

- an empty context is scored after bos (else eos), also when that id is 0 (falsy: Pythia's eos);
- a candidate's log-likelihood is summed in float64 from float64 log-probabilities of the logits;
- a context too long for the model is truncated per candidate, as lm-eval does.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from evals.generation import generate
from evals.loglikelihood import encode_loglikelihood, loglikelihood, next_token_logprobs
from evals.model_loading import LoadedModel
from evals.requests import GenerationRequest, LoglikelihoodRequest, NextTokenRequest

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the street. A woman reads a book in the park.",
    "entailment neutral contradiction yes no Answer A Answer B Answer C Question",
]
EOS, PAD, BOS = "<|endoftext|>", "<|pad|>", "<|bos|>"


def _eos_zero_lm(bos: str | None) -> LoadedModel:
    """A tiny OLMo whose tokenizer has eos id 0 and pad id 1 (and bos: none, the eos, or its own id 2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import OlmoForCausalLM, PreTrainedTokenizerFast

    from ptft.core.tiny import tiny_olmo_config

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_CORPUS, trainer=trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[EOS, PAD, BOS], show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=bos,
                                        padding_side="right")
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 1)
    torch.manual_seed(0)
    model = OlmoForCausalLM(tiny_olmo_config(len(tokenizer), pad_token_id=1, eos_token_id=0)).eval()
    return LoadedModel(model, tokenizer, torch.device("cpu"), torch.float32, max_length=64)


def _logprobs_after(lm: LoadedModel, ids: list[int]) -> torch.Tensor:
    """float64 log-probabilities at every position of one plain forward over `ids`."""
    with torch.no_grad():
        return torch.log_softmax(lm.model(torch.tensor([ids])).logits[0].double(), dim=-1)


PREFIXES = pytest.mark.parametrize(("bos", "prefix_id"), [(None, 0), (EOS, 0), (BOS, 2)])


@PREFIXES
def test_empty_context_is_scored_after_bos_else_eos_even_when_its_id_is_0(bos, prefix_id):
    """lm-eval's rule (`HFLM.prefix_token_id`): bos if the tokenizer has one, else eos; never pad."""
    lm = _eos_zero_lm(bos)
    assert lm.empty_context_id == prefix_id
    conts = (" the lazy dog", " yes", "A man")
    [answer] = loglikelihood(lm, [LoglikelihoodRequest("", conts)])
    for cont, got in zip(conts, answer.loglikelihoods, strict=True):
        ids = lm.tokenizer(cont, add_special_tokens=False)["input_ids"]
        logprobs = _logprobs_after(lm, [prefix_id, *ids])
        expected = sum(float(logprobs[i, token]) for i, token in enumerate(ids))
        assert got == pytest.approx(expected, abs=1e-5), cont


@PREFIXES
def test_next_token_after_an_empty_context_follows_bos_else_eos(bos, prefix_id):
    lm = _eos_zero_lm(bos)
    token_ids = (0, 1, 2, 5, 17)
    [(next_logprobs, dropped)] = next_token_logprobs(lm, [NextTokenRequest("", token_ids)])
    assert dropped == 0
    assert next_logprobs == pytest.approx(_logprobs_after(lm, [prefix_id])[0, list(token_ids)].tolist(), abs=1e-5)


@PREFIXES
def test_generation_from_an_empty_context_follows_bos_else_eos(bos, prefix_id):
    lm = _eos_zero_lm(bos)
    generated: list[int] = []
    for _ in range(6):  # greedy reference, stopping at eos (id 0)
        token = int(_logprobs_after(lm, [prefix_id, *generated])[-1].argmax())
        if token == lm.eos_id:
            break
        generated.append(token)
    [out] = generate(lm, [GenerationRequest("", (), 6)])
    assert out.num_tokens == len(generated)
    assert out.raw_text == lm.tokenizer.decode(generated, skip_special_tokens=True)


@contextlib.contextmanager
def _captured_logits(lm: LoadedModel):
    """The logits of every forward pass run inside the block, as the engine got them."""
    seen: list[torch.Tensor] = []
    hook = lm.model.register_forward_hook(lambda module, args, output: seen.append(output.logits.detach().clone()))
    try:
        yield seen
    finally:
        hook.remove()


def test_candidate_sum_is_accumulated_in_float64(tiny_lm):
    """An ~80-token candidate's sum equals an exact float64 sum of float64 log-softmax of the very logits
    the engine computed; summing float32 log-probabilities in float32 (the old engine) misses it."""
    context = "### Input: The cat sat on the mat.\n ### Summary:"
    words = "entailment neutral contradiction guitar street woman park summary question answer".split()
    candidate = "".join(f" {words[(7 * i) % len(words)]}{i % 10}" for i in range(40))
    [e] = encode_loglikelihood(tiny_lm.tokenizer, [LoglikelihoodRequest(context, (candidate,))],
                               tiny_lm.max_length, tiny_lm.empty_context_id)
    [cont] = e.continuations
    assert 70 <= len(cont) <= 120, len(cont)
    with _captured_logits(tiny_lm) as seen:
        [answer] = loglikelihood(tiny_lm, [LoglikelihoodRequest(context, (candidate,))])
    # The context pass keeps the logits after the context's last token; the candidate pass has one row
    # per candidate token but the last.
    assert [tuple(t.shape[:2]) for t in seen] == [(1, 1), (1, len(cont) - 1)]
    rows = torch.cat([seen[0][0], seen[1][0]])  # [len(cont), V]: row t predicts cont[t]
    targets = torch.tensor(cont)[:, None]
    exact = math.fsum(torch.log_softmax(rows.double(), -1).gather(-1, targets)[:, 0].tolist())
    assert abs(answer.loglikelihoods[0] - exact) <= 1e-10 * abs(exact)

    # The test's power: the old float32 log-softmax summed in float32 is off by far more than that.
    as_float32 = torch.zeros(1).index_add_(0, torch.zeros(len(cont), dtype=torch.long),
                                           torch.log_softmax(rows.float(), -1).gather(-1, targets)[:, 0])
    assert abs(float(as_float32) - exact) > 1e-8 * abs(exact)


def _lm_eval_reference(lm: LoadedModel, context: str, continuation: str) -> float:
    """lm-eval's HF backend on one (context, continuation): the model is fed
    `(context + continuation)[-(max_length + 1):][:-1]` and the continuation's tokens are scored."""
    stripped = context.rstrip()
    continuation = context[len(stripped):] + continuation
    context_ids = lm.tokenizer(stripped)["input_ids"]
    whole = lm.tokenizer(stripped + continuation)["input_ids"]
    assert whole[:len(context_ids)] == context_ids
    cont = whole[len(context_ids):]
    fed = whole[-(lm.max_length + 1):][:-1]
    assert len(fed) == min(lm.max_length, len(whole) - 1)
    logprobs = _logprobs_after(lm, fed)
    start = len(fed) - len(cont) + 1  # logits row predicting the continuation's first token, plus one
    return sum(float(logprobs[start - 1 + i, token]) for i, token in enumerate(cont))


def test_long_context_is_truncated_per_candidate(tiny_lm):
    """Each candidate keeps as much context as fits with it: a short candidate is not scored after the
    shorter context the longest candidate leaves room for."""
    lm = LoadedModel(tiny_lm.model, tiny_lm.tokenizer, tiny_lm.device, tiny_lm.dtype, max_length=32)
    long = "### Input: " + "The quick brown fox jumps over the lazy dog. " * 8 + "\n ### Summary: "
    conts = (" no", "entailment", " a long answer about a dog and a cat in the park", " yes")
    fits = "The quick brown fox"  # a request that needs no truncation, batched with the long one
    requests = [LoglikelihoodRequest(long, conts), LoglikelihoodRequest(fits, conts)]
    lengths = [len(c) for c in encode_loglikelihood(lm.tokenizer, requests[:1], 10_000, 0)[0].continuations]
    assert min(lengths) <= 2 and max(lengths) >= 8  # short and long candidates
    context_len = len(lm.tokenizer(long.rstrip())["input_ids"])
    assert context_len > lm.max_length

    positions: list[int] = []
    hook = lm.model.register_forward_pre_hook(
        lambda module, args, kwargs: positions.append(int(kwargs["position_ids"].max())), with_kwargs=True)
    try:
        answers = {bs: loglikelihood(lm, requests, batch_size=bs) for bs in (1, 8)}
    finally:
        hook.remove()
    assert max(positions) < lm.max_length  # no token is fed beyond the model's window
    for answer in answers.values():
        for request, result in zip(requests, answer, strict=True):
            expected = [_lm_eval_reference(lm, request.context, c) for c in request.continuations]
            assert result.loglikelihoods == pytest.approx(expected, abs=1e-4)
        # The request reports the most context any candidate lost: the longest candidate's.
        assert answer[0].truncated_tokens == context_len - (lm.max_length - (max(lengths) - 1))
        assert answer[1].truncated_tokens == 0
    assert answers[1][0].loglikelihoods == pytest.approx(answers[8][0].loglikelihoods, abs=1e-5)
