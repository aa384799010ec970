"""Batched log-likelihood scoring with one pass over each shared context.

A prompt and its label candidates are scored in two forward passes per batch: the contexts alone
(left-padded, keeping the KV cache), then every multi-token continuation against that cache, which is
gathered once per candidate with `batch_select_indices`. A context is never run twice, and single-token
label words (most of them) need no second pass at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evals.batching import left_pad, length_sorted_batches, progress_bar, right_pad, truncate_left
from evals.model_loading import LoadedModel
from evals.requests import (
    LoglikelihoodRequest,
    LoglikelihoodResult,
    NextTokenRequest,
    split_trailing_whitespace,
)


@dataclass
class _Encoded:
    context: list[int]
    continuations: list[list[int]]
    truncated: int


def encode_loglikelihood(tokenizer, requests: Sequence[LoglikelihoodRequest], max_length: int,
                         fallback_id: int) -> list[_Encoded]:
    """Token ids of each context and continuation, as the model would have seen them joined.

    The continuation ids are cut from the encoding of context + continuation (BPE merges across the
    join); a tokenizer whose joint encoding does not start with the context's ids falls back to
    encoding the continuation alone, so that every candidate shares exactly the same context ids.
    """
    contexts, joined, alone = [], [], []
    for req in requests:
        context = req.context.rstrip()
        contexts.append(context)
        for cont in req.continuations:
            ctx, moved = split_trailing_whitespace(req.context, cont)
            joined.append(ctx + moved)
            alone.append(moved)
    ctx_ids = tokenizer(contexts)["input_ids"] if contexts else []
    joined_ids = tokenizer(joined)["input_ids"] if joined else []
    alone_ids = tokenizer(alone, add_special_tokens=False)["input_ids"] if alone else []
    encoded, cursor = [], 0
    for req, ctx in zip(requests, ctx_ids):
        ctx = list(ctx) or [fallback_id]  # an empty context still needs a position to predict from
        conts = []
        for _ in req.continuations:
            whole = joined_ids[cursor]
            conts.append(list(whole[len(ctx):]) if whole[:len(ctx)] == ctx else list(alone_ids[cursor]))
            cursor += 1
        longest = max((len(c) for c in conts), default=0)
        ctx, dropped = truncate_left(ctx, max_length - longest)
        encoded.append(_Encoded(ctx, conts, dropped))
    return encoded


def loglikelihood(lm: LoadedModel, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16,
                  progress: bool = False) -> list[LoglikelihoodResult]:
    """log P(continuation | context) for every continuation of every request, in request order."""
    import torch

    encoded = encode_loglikelihood(lm.tokenizer, requests, lm.max_length, lm.eos_id or lm.pad_id)
    lengths = [len(e.context) + max((len(c) for c in e.continuations), default=0) for e in encoded]
    results: list[LoglikelihoodResult | None] = [None] * len(requests)
    batches = length_sorted_batches(lengths, batch_size)
    with torch.inference_mode(), progress_bar(len(requests), "loglikelihood", progress) as bar:
        for batch in batches:
            for index, result in zip(batch, _score_batch(lm, [encoded[i] for i in batch])):
                results[index] = result
            bar.update(len(batch))
    return results  # type: ignore[return-value]


def _score_batch(lm: LoadedModel, batch: list[_Encoded]) -> list[LoglikelihoodResult]:
    import torch

    ids, mask, positions = left_pad([e.context for e in batch], lm.pad_id, lm.device)
    multi = [(row, j) for row, e in enumerate(batch) for j, c in enumerate(e.continuations) if len(c) > 1]
    out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=bool(multi),
                   logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
    first_best = first.argmax(dim=-1)
    scores = [[0.0] * len(e.continuations) for e in batch]
    greedy = [[True] * len(e.continuations) for e in batch]
    for row, e in enumerate(batch):
        for j, cont in enumerate(e.continuations):
            if cont:
                scores[row][j] = float(first[row, cont[0]])
                greedy[row][j] = bool(first_best[row] == cont[0])
    if multi:
        _continuation_pass(lm, batch, multi, out.past_key_values, mask, scores, greedy)
    return [
        LoglikelihoodResult(tuple(scores[row]), tuple(len(c) for c in e.continuations), tuple(greedy[row]),
                            e.truncated)
        for row, e in enumerate(batch)
    ]


def _continuation_pass(lm: LoadedModel, batch: list[_Encoded], multi: list[tuple[int, int]], cache,
                       context_mask, scores: list[list[float]], greedy: list[list[bool]]) -> None:
    """Tokens 2..n of each multi-token continuation, against its prompt's cached context."""
    import torch

    source = torch.tensor([row for row, _ in multi], device=lm.device)
    cache.batch_select_indices(source)  # one cache row per candidate, gathered, never recomputed
    conts = [batch[row].continuations[j] for row, j in multi]
    inputs, cont_mask = right_pad([c[:-1] for c in conts], lm.pad_id, lm.device)
    targets, _ = right_pad([c[1:] for c in conts], lm.pad_id, lm.device)
    mask = torch.cat([context_mask.index_select(0, source), cont_mask], dim=1)
    context_lengths = context_mask.sum(dim=1).index_select(0, source)
    positions = context_lengths[:, None] + torch.arange(inputs.shape[1], device=lm.device)[None, :]
    out = lm.model(input_ids=inputs, attention_mask=mask, position_ids=positions, past_key_values=cache,
                   use_cache=True)
    logprobs = torch.log_softmax(out.logits.float(), dim=-1)
    token_scores = logprobs.gather(-1, targets[..., None]).squeeze(-1) * cont_mask
    token_greedy = (logprobs.argmax(dim=-1) == targets) | (cont_mask == 0)
    sums = token_scores.sum(dim=1).tolist()
    all_greedy = token_greedy.all(dim=1).tolist()
    for k, (row, j) in enumerate(multi):
        scores[row][j] += sums[k]
        greedy[row][j] = greedy[row][j] and bool(all_greedy[k])


def next_token_logprobs(lm: LoadedModel, requests: Sequence[NextTokenRequest], batch_size: int = 16,
                        progress: bool = False) -> list[tuple[list[float], int]]:
    """For each request: log-probabilities of its token ids right after the raw context (no whitespace
    moved, as the study tokenized it), and how many context tokens were truncated."""
    import torch

    contexts = lm.tokenizer([r.context for r in requests])["input_ids"] if requests else []
    trimmed = [truncate_left(list(ids) or [lm.eos_id or lm.pad_id], lm.max_length) for ids in contexts]
    results: list[tuple[list[float], int] | None] = [None] * len(requests)
    with torch.inference_mode(), progress_bar(len(requests), "next token", progress) as bar:
        for batch in length_sorted_batches([len(ids) for ids, _ in trimmed], batch_size):
            ids, mask, positions = left_pad([trimmed[i][0] for i in batch], lm.pad_id, lm.device)
            out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                           logits_to_keep=1)
            logprobs = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
            for row, index in enumerate(batch):
                wanted = torch.tensor(requests[index].token_ids, dtype=torch.long, device=lm.device)
                results[index] = (logprobs[row].index_select(0, wanted).tolist(), trimmed[index][1])
            bar.update(len(batch))
    return results  # type: ignore[return-value]
