"""The batched engine against a plain reference: one example at a time, no padding, no cache reuse."""

from __future__ import annotations

import contextlib

import pytest
import torch

from evals.generation import generate
from evals.loglikelihood import loglikelihood, next_token_logprobs
from evals.model_loading import LoadedModel
from evals.requests import GenerationRequest, LoglikelihoodRequest, NextTokenRequest

CONTEXTS = [
    "### Input_1: The cat sat on the mat.\n ### Input_2: A cat sat.\n ### Inference: ",
    "Consider the following texts: Text 1: A man plays a guitar. Text 2: A man reads. The relation is ",
    "The quick brown fox",
    "### Input: " + "The quick brown fox jumps over the lazy dog. " * 6 + "\n ### Summary: ",
    "Question: what is two plus two?\nAnswer:",
    "A",
]
CANDIDATES = ("entailment", "neutral", "contradiction", " a long answer about a dog", "yes")


def reference_loglikelihood(lm: LoadedModel, context: str, continuation: str) -> float:
    """Full forward over context + continuation, one example, summing the continuation's log-probs."""
    stripped = context.rstrip()
    continuation = context[len(stripped):] + continuation
    context_ids = lm.tokenizer(stripped)["input_ids"]
    whole = lm.tokenizer(stripped + continuation)["input_ids"]
    assert whole[:len(context_ids)] == context_ids
    with torch.no_grad():
        logits = lm.model(torch.tensor([whole])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return sum(float(logprobs[i - 1, whole[i]]) for i in range(len(context_ids), len(whole)))


def reference_generate(lm: LoadedModel, context: str, max_new_tokens: int, stop: tuple[str, ...],
                       eos_id: int | None) -> str:
    """Greedy decoding with a full forward per step and no cache."""
    ids = lm.tokenizer(context)["input_ids"]
    generated: list[int] = []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            token = int(lm.model(torch.tensor([ids + generated])).logits[0, -1].argmax())
        if token == eos_id:
            break
        generated.append(token)
        text = lm.tokenizer.decode(generated, skip_special_tokens=True)
        if any(s in text for s in stop):
            break
    text = lm.tokenizer.decode(generated, skip_special_tokens=True)
    cuts = [text.find(s) for s in stop if s in text]
    return text[:min(cuts)] if cuts else text


@contextlib.contextmanager
def fed_shapes(lm):
    """The `input_ids` shape of every forward pass run inside the block."""
    fed: list[tuple[int, int]] = []
    hook = lm.model.register_forward_pre_hook(
        lambda module, args, kwargs: fed.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        yield fed
    finally:
        hook.remove()


def test_loglikelihood_matches_reference_and_batch_size(tiny_lm):
    requests = [LoglikelihoodRequest(c, CANDIDATES) for c in CONTEXTS]
    batched = loglikelihood(tiny_lm, requests, batch_size=8)
    single = loglikelihood(tiny_lm, requests, batch_size=1)
    for request, many, one in zip(requests, batched, single, strict=True):
        expected = [reference_loglikelihood(tiny_lm, request.context, c) for c in request.continuations]
        assert many.loglikelihoods == pytest.approx(expected, abs=1e-4)
        assert many.loglikelihoods == pytest.approx(one.loglikelihoods, abs=1e-4)
        assert int(torch.tensor(many.loglikelihoods).argmax()) == int(torch.tensor(expected).argmax())
    assert batched[0].token_counts[3] > 1  # the multi-token path is exercised


def test_context_runs_once_per_prompt(tiny_lm):
    """All candidates of a prompt share one pass: the context once, then each candidate's tokens."""
    with fed_shapes(tiny_lm) as fed:
        [answer] = loglikelihood(tiny_lm, [LoglikelihoodRequest(CONTEXTS[3], CANDIDATES)], batch_size=4)
    context_len = len(tiny_lm.tokenizer(CONTEXTS[3].rstrip())["input_ids"])
    packed = sum(n - 1 for n in answer.token_counts)  # a candidate's last token is never fed
    # The context once, then every candidate's tokens in one pass over the cache: never the context again.
    assert fed == [(1, context_len), (1, packed)]


def test_single_token_candidates_cost_one_pass(tiny_lm):
    single = (" the", " a", " dog")  # one token each after a context that ends in a word
    requests = [LoglikelihoodRequest(c, single) for c in (CONTEXTS[2], CONTEXTS[4], CONTEXTS[5])]
    with fed_shapes(tiny_lm) as fed:
        answers = loglikelihood(tiny_lm, requests, batch_size=8)
    assert all(n == 1 for a in answers for n in a.token_counts)
    assert len(fed) == 1 and fed[0][0] == 3
    for request, answer in zip(requests, answers, strict=True):
        expected = [reference_loglikelihood(tiny_lm, request.context, c) for c in request.continuations]
        assert answer.loglikelihoods == pytest.approx(expected, abs=1e-4)


def test_next_token_logprobs_match_reference(tiny_lm):
    token_ids = (5, 17, 222, 426)
    requests = [NextTokenRequest(c, token_ids) for c in CONTEXTS]
    for batch_size in (1, 8):
        answers = next_token_logprobs(tiny_lm, requests, batch_size=batch_size)
        for request, (logprobs, dropped) in zip(requests, answers, strict=True):
            ids = tiny_lm.tokenizer(request.context)["input_ids"]
            with torch.no_grad():
                full = torch.log_softmax(tiny_lm.model(torch.tensor([ids])).logits[0, -1].float(), -1)
            assert logprobs == pytest.approx(full[list(token_ids)].tolist(), abs=1e-4)
            assert dropped == 0


@pytest.mark.parametrize("use_stop", [False, True])
def test_generation_matches_reference(tiny_lm, use_stop):
    plain = [reference_generate(tiny_lm, c, 12, (), tiny_lm.eos_id) for c in CONTEXTS]
    # Stop sequences taken from the reference's own output, so that some rows stop early and some do not.
    stops = tuple({text[3:5] for text in plain[:2] if len(text) > 5}) if use_stop else ()
    requests = [GenerationRequest(c, stops, 12) for c in CONTEXTS]
    expected = [reference_generate(tiny_lm, c, 12, stops, tiny_lm.eos_id) for c in CONTEXTS]
    for batch_size in (1, 4, 8):
        outputs = generate(tiny_lm, requests, batch_size=batch_size)
        assert [o.text for o in outputs] == expected
    if use_stop:
        assert any(o.finish_reason == "stop" for o in outputs)
        assert any(o.finish_reason == "length" for o in outputs)


class _EosModel(LoadedModel):
    """The tiny model with another token playing eos, so that some rows end on eos."""

    forced_eos: int = 0

    @property
    def eos_id(self) -> int | None:
        return self.forced_eos


def test_generation_stops_on_eos(tiny_lm):
    first = reference_generate(tiny_lm, CONTEXTS[0], 6, (), None)
    eos = tiny_lm.tokenizer(first)["input_ids"][2]  # a token the model emits early for this prompt
    lm = _EosModel(tiny_lm.model, tiny_lm.tokenizer, tiny_lm.device, tiny_lm.dtype, tiny_lm.max_length)
    lm.forced_eos = eos
    requests = [GenerationRequest(c, (), 10) for c in CONTEXTS]
    expected = [reference_generate(tiny_lm, c, 10, (), eos) for c in CONTEXTS]
    outputs = generate(lm, requests, batch_size=8)
    assert [o.text for o in outputs] == expected
    assert outputs[0].finish_reason == "eos"


def test_long_context_is_truncated_from_the_left(tiny_lm):
    lm = LoadedModel(tiny_lm.model, tiny_lm.tokenizer, tiny_lm.device, tiny_lm.dtype, max_length=16)
    long = "The quick brown fox jumps over the lazy dog. " * 10
    [answer] = loglikelihood(lm, [LoglikelihoodRequest(long, ("entailment", " no"))])
    assert answer.truncated_tokens > 0
    [out] = generate(lm, [GenerationRequest(long, (), 4)])
    assert out.truncated_tokens > 0 and out.num_tokens <= 4


def test_continuation_tokens_equal_the_joint_encoding(tiny_lm):
    """The tail-only encoding shortcut gives the tokens the whole joined text would have."""
    from evals.loglikelihood import encode_loglikelihood

    tok = tiny_lm.tokenizer
    cases = [(c, cont) for c in CONTEXTS + ["The quick bro", "x" * 200 + " entail", "Answer:\n\n"]
             for cont in ("wn fox", "ment", " entailment", "yes", "\n###", "")]
    encoded = encode_loglikelihood(tok, [LoglikelihoodRequest(c, (cont,)) for c, cont in cases], 10_000, 1)
    for (context, cont), e in zip(cases, encoded, strict=True):
        stripped = context.rstrip()
        moved = context[len(stripped):] + cont
        ctx = tok(stripped)["input_ids"]
        whole = tok(stripped + moved)["input_ids"]
        expected = whole[len(ctx):] if whole[:len(ctx)] == ctx else tok(moved, add_special_tokens=False)["input_ids"]
        assert e.context == ctx and e.continuations == [expected], (context[-20:], cont)


# k-shot prompts: the same demonstrations, then each example's own question.
SHOTS = "".join(f"### Input: example {n} about a dog and a cat.\n ### Summary: dog {n}\n\n" for n in range(4))
SHARED = [SHOTS + f"### Input: {c}\n ### Summary:" for c in CONTEXTS]


def test_shared_prefix_runs_once_and_scores_match_reference(tiny_lm):
    prefix_len = len(tiny_lm.tokenizer(SHOTS)["input_ids"]) - 1  # BPE may merge across the seam
    requests = [LoglikelihoodRequest(c, CANDIDATES) for c in SHARED]
    with fed_shapes(tiny_lm) as fed:
        answers = loglikelihood(tiny_lm, requests, batch_size=2)  # three batches share one prefix pass
    prefix_passes = [shape for shape in fed if shape[0] == 1]
    assert len(prefix_passes) == 1 and prefix_passes[0][1] >= prefix_len
    assert all(shape[1] < prefix_len for shape in fed if shape[0] > 1)  # suffixes only, never the shots
    for request, answer in zip(requests, answers, strict=True):
        expected = [reference_loglikelihood(tiny_lm, request.context, c) for c in request.continuations]
        assert answer.loglikelihoods == pytest.approx(expected, abs=1e-4)


def test_shared_prefix_next_token_and_generation_match_reference(tiny_lm):
    token_ids = (5, 17, 222)
    answers = next_token_logprobs(tiny_lm, [NextTokenRequest(c, token_ids) for c in SHARED], batch_size=4)
    for context, (logprobs, _) in zip(SHARED, answers, strict=True):
        ids = tiny_lm.tokenizer(context)["input_ids"]
        with torch.no_grad():
            full = torch.log_softmax(tiny_lm.model(torch.tensor([ids])).logits[0, -1].float(), -1)
        assert logprobs == pytest.approx(full[list(token_ids)].tolist(), abs=1e-4)
    expected = [reference_generate(tiny_lm, c, 8, (), tiny_lm.eos_id) for c in SHARED]
    outputs = generate(tiny_lm, [GenerationRequest(c, (), 8) for c in SHARED], batch_size=3)
    assert [o.text for o in outputs] == expected


def test_repeated_prompts_are_scored_once(tiny_lm):
    reordered = tuple(reversed(CANDIDATES))
    requests = [LoglikelihoodRequest(CONTEXTS[0], CANDIDATES), LoglikelihoodRequest(CONTEXTS[0], reordered),
                LoglikelihoodRequest(CONTEXTS[1], CANDIDATES[:2])]
    with fed_shapes(tiny_lm) as fed:
        answers = loglikelihood(tiny_lm, requests, batch_size=8)
        generated = generate(tiny_lm, [GenerationRequest(CONTEXTS[2], (), 5)] * 3, batch_size=8)
    assert fed[0][0] == 2  # two distinct contexts in the context pass, not three
    assert all(shape[0] == 1 for shape in fed[2:])  # generation: one row for three identical requests
    assert answers[1].loglikelihoods == tuple(reversed(answers[0].loglikelihoods))
    [alone] = loglikelihood(tiny_lm, [requests[2]])
    assert answers[2].loglikelihoods == pytest.approx(alone.loglikelihoods, abs=1e-5)
    assert len({o.text for o in generated}) == 1 and generated[0].num_tokens > 0
