"""Batched log-likelihood scoring with one pass over each shared context.

A batch of contexts runs first, right-padded and unmasked (the fast causal kernels); the logits after
each context's last token score every candidate's first token. Where some candidate has more tokens,
a second, short pass reads the contexts from the KV cache: each row packs its prompt's candidates (all
tokens but the last) one after the other, and a 4-d mask lets each see its context and its own earlier
tokens only. The context is never repeated per candidate, and single-token candidates (most label
words) cost nothing beyond the context pass.

Per-token log-probabilities are taken in float64 from the model's logits, a bounded chunk of rows at a
time (never the whole logits tensor upcast), and summed in float64: float32 sums of 50-80 tokens drift
by up to 1e-4 from an exact sum.

A context too long for the model is truncated per candidate, as lm-eval does: each candidate keeps the
last `max_length - (len(candidate) - 1)` context tokens, at least one (the model sees at most
`max_length` tokens unless a candidate alone is longer: a candidate's last token is never fed, and a
candidate is never cut). Candidates of a request that keep the same context share one context pass;
where truncation gives them different contexts, each distinct context is its own piece (its own row
of the context pass).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from evals.batching import (
    attention_mask,
    length_sorted_batches,
    once_per_distinct_request,
    progress_bar,
    truncate_left,
)
from evals.model_loading import LoadedModel
from evals.prefill import PrefixCache, prefill
from evals.requests import (
    LoglikelihoodRequest,
    LoglikelihoodResult,
    NextTokenRequest,
    split_trailing_whitespace,
)

# Characters of context re-encoded together with each continuation to find the continuation's tokens
# (BPE may merge across the join); far cheaper than re-encoding the whole few-shot context per candidate.
_TAIL_CHARS = 64

# Logits elements upcast to float64 at a time when scoring tokens (8 bytes each: 64 MiB).
_CHUNK_ELEMENTS = 1 << 23


@dataclass
class _Encoded:
    """One context pass row: a request's context (as truncated for these candidates) and candidates."""

    context: list[int]
    continuations: list[list[int]]
    truncated: int
    request: int = 0  # index of the request it belongs to
    indices: tuple[int, ...] = ()  # which of that request's continuations these are, in order


def _continuation_ids(tokenizer, contexts: list[str], context_ids: list[list[int]],
                      pairs: list[tuple[int, str]]) -> list[list[int]]:
    """Token ids of each (context index, continuation) as cut from the encoding of the joined text.

    Encodes only the last `_TAIL_CHARS` characters of the context with the continuation. The tail's
    own encoding must agree with the full context's last tokens (all but possibly its first token);
    otherwise the whole joined text is encoded, and where even that does not start with the context's
    ids, the continuation alone is.
    """
    tails = [contexts[c][-_TAIL_CHARS:] for c, _ in pairs]
    tail_ids = tokenizer(tails, add_special_tokens=False)["input_ids"]
    joined_ids = tokenizer([t + cont for t, (_, cont) in zip(tails, pairs, strict=True)],
                           add_special_tokens=False)["input_ids"]
    out: list[list[int] | None] = []
    slow: list[int] = []
    for k, ((c, _), tail, joined) in enumerate(zip(pairs, tail_ids, joined_ids, strict=True)):
        full = context_ids[c]
        agrees = len(tail) >= 2 and len(full) >= len(tail) - 1 and full[len(full) - len(tail) + 1:] == tail[1:]
        if agrees and joined[:len(tail)] == tail:
            out.append(list(joined[len(tail):]))
        else:
            out.append(None)
            slow.append(k)
    if slow:
        whole = tokenizer([contexts[pairs[k][0]] + pairs[k][1] for k in slow])["input_ids"]
        alone = tokenizer([pairs[k][1] for k in slow], add_special_tokens=False)["input_ids"]
        for k, w, a in zip(slow, whole, alone, strict=True):
            ctx = context_ids[pairs[k][0]]
            out[k] = list(w[len(ctx):]) if list(w[:len(ctx)]) == ctx else list(a)
    return out  # type: ignore[return-value]


def encode_loglikelihood(tokenizer, requests: Sequence[LoglikelihoodRequest], max_length: int,
                         fallback_id: int) -> list[_Encoded]:
    """Token ids of each context and of its continuations, as the model would see them joined.

    The context's trailing whitespace moves onto the continuations (`split_trailing_whitespace`), so
    all candidates of a request share exactly the same context ids. An empty context becomes
    `[fallback_id]` (see `LoadedModel.empty_context_id`).

    Returns pieces in request order: one per request when its context fits with every candidate,
    else one per distinct truncated context (candidates that keep the same context tokens share one).
    """
    contexts = [req.context.rstrip() for req in requests]
    context_ids = [list(ids) for ids in tokenizer(contexts)["input_ids"]] if contexts else []
    pairs = [(i, split_trailing_whitespace(req.context, cont)[1])
             for i, req in enumerate(requests) for cont in req.continuations]
    cont_ids = _continuation_ids(tokenizer, contexts, context_ids, pairs) if pairs else []
    encoded, cursor = [], 0
    for r, (req, ctx) in enumerate(zip(requests, context_ids, strict=True)):
        conts = cont_ids[cursor:cursor + len(req.continuations)]
        cursor += len(req.continuations)
        ctx = ctx or [fallback_id]  # an empty context still needs a position to predict from
        # Positions restart after the context for every candidate: the context plus each candidate
        # (its last token is never fed) must fit the model, not the sum of all candidates. Each
        # candidate keeps as much context as fits with it (lm-eval's rule); never less than one token.
        groups: dict[int, list[int]] = {}
        for k, cont in enumerate(conts):
            groups.setdefault(_kept(len(ctx), len(cont), max_length), []).append(k)
        if not conts:
            groups[_kept(len(ctx), 0, max_length)] = []
        for kept, members in sorted(groups.items(), reverse=True):
            encoded.append(_Encoded(ctx[len(ctx) - kept:], [conts[k] for k in members], len(ctx) - kept,
                                    r, tuple(members)))
    return encoded


def _kept(context_len: int, continuation_len: int, max_length: int) -> int:
    """Context tokens a candidate keeps: the model is fed at most `max_length` tokens, the context's
    tail then all of the candidate but its last token (lm-eval's `(ctx + cont)[-(max_length + 1):][:-1]`),
    and at least one context token, whose logits score the candidate's first token."""
    return min(context_len, max(1, max_length - max(continuation_len - 1, 0)))


def _cost(e: _Encoded) -> int:
    """What a request adds to its batch's width (the context pass dominates; candidates are short)."""
    return len(e.context) + sum(max(len(c) - 1, 0) for c in e.continuations)


def loglikelihood(lm: LoadedModel, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16,
                  progress: bool = False, faithful: bool = False) -> list[LoglikelihoodResult]:
    """log P(continuation | context) for every continuation of every request, in request order.

    `faithful`: no context is truncated (the study fed whole prompts); `past_window` says whether some
    candidate ran past the model's trained window.

    Requests with the same context (few-shot sets drawn from small pools repeat prompts, with the
    options in another order) are merged: one pass per distinct context scores the union of their
    continuations.
    """
    merged: dict[str, dict[str, None]] = {}
    for req in requests:
        merged.setdefault(req.context, {}).update(dict.fromkeys(req.continuations))
    distinct = [LoglikelihoodRequest(context, tuple(conts)) for context, conts in merged.items()]
    scored = dict(zip(merged, _loglikelihood(lm, distinct, batch_size, progress, faithful), strict=True))
    results = []
    for req in requests:
        answer = scored[req.context]
        where = {cont: k for k, cont in enumerate(merged[req.context])}
        picks = [where[cont] for cont in req.continuations]
        results.append(LoglikelihoodResult(tuple(answer.loglikelihoods[k] for k in picks),
                                           tuple(answer.token_counts[k] for k in picks),
                                           tuple(answer.is_greedy[k] for k in picks), answer.truncated_tokens,
                                           answer.past_window))
    return results


def _loglikelihood(lm: LoadedModel, requests: list[LoglikelihoodRequest], batch_size: int,
                   progress: bool, faithful: bool = False) -> list[LoglikelihoodResult]:
    import torch

    # faithful: a budget no context reaches, so every candidate keeps its whole context
    max_length = sys.maxsize if faithful else lm.max_length
    encoded = encode_loglikelihood(lm.tokenizer, requests, max_length, lm.empty_context_id)
    scored: list[LoglikelihoodResult | None] = [None] * len(encoded)
    batches = length_sorted_batches([_cost(e) for e in encoded], batch_size)
    prefixes = PrefixCache()
    with torch.inference_mode(), progress_bar(len(encoded), "loglikelihood", progress) as bar:
        for batch in batches:
            for index, result in zip(batch, _score_batch(lm, [encoded[i] for i in batch], prefixes), strict=True):
                scored[index] = result
            bar.update(len(batch))
    # Pieces back into requests: each candidate's answer from its piece; a request's truncation is the
    # most context any of its candidates lost.
    logliks = [[0.0] * len(req.continuations) for req in requests]
    counts = [[0] * len(req.continuations) for req in requests]
    greedy = [[False] * len(req.continuations) for req in requests]
    dropped = [0] * len(requests)
    past = [False] * len(requests)
    for e, result in zip(encoded, scored, strict=True):
        fed = len(e.context) + max((len(c) - 1 for c in e.continuations), default=0)
        past[e.request] = past[e.request] or fed > lm.trained_window
        for j, k in enumerate(e.indices):
            logliks[e.request][k] = result.loglikelihoods[j]
            counts[e.request][k] = result.token_counts[j]
            greedy[e.request][k] = result.is_greedy[j]
        dropped[e.request] = max(dropped[e.request], e.truncated)
    return [LoglikelihoodResult(tuple(ll), tuple(n), tuple(g), d, p)
            for ll, n, g, d, p in zip(logliks, counts, greedy, dropped, past, strict=True)]


def _score_batch(lm: LoadedModel, batch: list[_Encoded], prefixes: PrefixCache) -> list[LoglikelihoodResult]:
    import torch

    multi_token = any(len(c) > 1 for e in batch for c in e.continuations)
    first, cache, lengths = prefill(lm, [e.context for e in batch], multi_token, prefixes)  # [B, V] logits
    rest, starts = _candidate_pass(lm, batch, cache, lengths) if multi_token else (None, None)
    # One gather for every scored token of every candidate in the batch, then per-candidate sums.
    rows, columns, targets, owners, counts = [], [], [], [], []
    head_rows, head_targets, head_owners = [], [], []
    for b, e in enumerate(batch):
        for k, cont in enumerate(e.continuations):
            owner = len(counts)
            counts.append(len(cont))
            if not cont:
                continue
            head_rows.append(b)
            head_targets.append(cont[0])
            head_owners.append(owner)
            # Token t > 0 is predicted at the packed column of token t - 1.
            rows += [b] * (len(cont) - 1)
            columns += range(starts[b][k], starts[b][k] + len(cont) - 1) if len(cont) > 1 else []
            targets += cont[1:]
            owners += [owner] * (len(cont) - 1)
    device = first.device
    sums = torch.zeros(len(counts), dtype=torch.float64, device=device)  # float64: see the module doc
    missed = torch.zeros(len(counts), device=device)

    def accumulate(logits, index: tuple[list[int], ...], owner_ids: list[int], targets_: list[int]) -> None:
        owner_t = torch.tensor(owner_ids, dtype=torch.long, device=device)
        target_t = torch.tensor(targets_, dtype=torch.long, device=device)
        where = tuple(torch.tensor(i, dtype=torch.long, device=device) for i in index)
        logprobs, is_argmax = _token_logprobs(logits, where, target_t)
        sums.index_add_(0, owner_t, logprobs)
        missed.index_add_(0, owner_t, (~is_argmax).float())

    if head_rows:
        accumulate(first, (head_rows,), head_owners, head_targets)
    if rows:
        accumulate(rest, (rows, columns), owners, targets)
    sums_list, missed_list = sums.tolist(), missed.tolist()
    results, cursor = [], 0
    for e in batch:
        n = len(e.continuations)
        results.append(LoglikelihoodResult(tuple(sums_list[cursor:cursor + n]), tuple(counts[cursor:cursor + n]),
                                           tuple(m == 0 for m in missed_list[cursor:cursor + n]), e.truncated))
        cursor += n
    return results


def _token_logprobs(logits, index, targets):
    """log P(target) in float64 at rows `logits[index]` (`index`: one long tensor per leading dim), and
    whether each target is its row's argmax. Rows are upcast to float64 a bounded chunk at a time."""
    import torch

    per_chunk = max(1, _CHUNK_ELEMENTS // logits.shape[-1])
    logprobs, is_argmax = [], []
    for start in range(0, len(targets), per_chunk):
        rows = logits[tuple(i[start:start + per_chunk] for i in index)]  # [n, V] in the logits' dtype
        wanted = targets[start:start + per_chunk]
        logprobs.append(torch.log_softmax(rows.double(), dim=-1).gather(-1, wanted[:, None])[:, 0])
        is_argmax.append(rows.argmax(dim=-1) == wanted)
    return torch.cat(logprobs), torch.cat(is_argmax)


def _candidate_pass(lm: LoadedModel, batch: list[_Encoded], cache, lengths):
    """Logits at every packed candidate token, reading the contexts from the cache.

    Each row holds its prompt's candidates (all tokens but the last) one after the other. A candidate
    sees its context's real columns of the cache and its own earlier tokens, never another candidate
    or a pad, and its positions restart where the context ends: scored exactly as if it followed the
    context alone. Returns `[B, Q, V]` logits and per row each candidate's start column.
    """
    import torch

    rows, segments, positions, starts = [], [], [], []
    for e, n in zip(batch, lengths.tolist(), strict=True):
        ids, seg, pos, begin = [], [], [], []
        for k, cont in enumerate(e.continuations, start=1):
            begin.append(len(ids))
            body = cont[:-1]
            ids += body
            seg += [k] * len(body)
            pos += range(n, n + len(body))
        rows.append(ids)
        segments.append(seg)
        positions.append(pos)
        starts.append(begin)
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), lm.pad_id, dtype=torch.long)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)  # -1: padding
    position = torch.zeros((len(rows), width), dtype=torch.long)
    for b, (ids, seg, pos) in enumerate(zip(rows, segments, positions, strict=True)):
        input_ids[b, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        segment[b, :len(seg)] = torch.tensor(seg, dtype=torch.long)
        position[b, :len(pos)] = torch.tensor(pos, dtype=torch.long)
    device = lm.device
    segment = segment.to(device)
    context_width = cache.get_seq_length()
    # Every query (pads included, so that no row is all-masked) sees its context's real columns.
    sees_context = torch.arange(context_width, device=device)[None, :] < lengths[:, None]  # [B, W]
    query, key = segment[:, :, None], segment[:, None, :]
    causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
    sees_own = causal & (key != -1) & (key == query)  # [B, Q, Q]
    mask = torch.cat([sees_context[:, None, :].expand(-1, width, -1), sees_own], dim=2)
    out = lm.model(input_ids=input_ids.to(device), attention_mask=attention_mask(lm, mask[:, None]),
                   position_ids=position.to(device), past_key_values=cache, use_cache=True)
    return out.logits, starts


@once_per_distinct_request
def next_token_logprobs(lm: LoadedModel, requests: Sequence[NextTokenRequest], batch_size: int = 16,
                        progress: bool = False, faithful: bool = False) -> list[tuple[list[float], int]]:
    """For each request: log-probabilities of its token ids right after the raw context (no whitespace
    moved, as the study tokenized it), and how many context tokens were truncated (`faithful`: none,
    the whole context is fed however long, as the study's `padding="longest"`, no truncation, did)."""
    import torch

    contexts = lm.tokenizer([r.context for r in requests])["input_ids"] if requests else []
    trimmed = [(list(ids) or [lm.empty_context_id], 0) if faithful
               else truncate_left(list(ids) or [lm.empty_context_id], lm.max_length) for ids in contexts]
    results: list[tuple[list[float], int] | None] = [None] * len(requests)
    prefixes = PrefixCache()
    with torch.inference_mode(), progress_bar(len(requests), "next token", progress) as bar:
        for batch in length_sorted_batches([len(ids) for ids, _ in trimmed], batch_size):
            last, _, _ = prefill(lm, [trimmed[i][0] for i in batch], False, prefixes)
            logprobs = torch.log_softmax(last.float(), dim=-1)
            for row, index in enumerate(batch):
                wanted = torch.tensor(requests[index].token_ids, dtype=torch.long, device=lm.device)
                results[index] = (logprobs[row].index_select(0, wanted).tolist(), trimmed[index][1])
            bar.update(len(batch))
    return results  # type: ignore[return-value]
