"""Batched log-likelihood scoring with one pass over each shared context.

A prompt and all of its candidates are packed into one row: the context once, then every candidate's
tokens (but the last) one after the other. A 4-d attention mask lets each candidate see the context and
its own earlier tokens only, and its position ids restart where the context ends, so every candidate is
scored exactly as if it followed the context alone — in one forward pass per batch, with no KV cache to
copy per candidate. The first token of every candidate is read off the context's last position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evals.batching import left_pad, length_sorted_batches, progress_bar, truncate_left
from evals.model_loading import LoadedModel
from evals.requests import (
    LoglikelihoodRequest,
    LoglikelihoodResult,
    NextTokenRequest,
    split_trailing_whitespace,
)

# Characters of context re-encoded together with each continuation to find the continuation's tokens
# (BPE may merge across the join); far cheaper than re-encoding the whole few-shot context per candidate.
_TAIL_CHARS = 64


@dataclass
class _Encoded:
    context: list[int]
    continuations: list[list[int]]
    truncated: int


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
    all candidates of a request share exactly the same context ids.
    """
    contexts = [req.context.rstrip() for req in requests]
    context_ids = [list(ids) for ids in tokenizer(contexts)["input_ids"]] if contexts else []
    pairs = [(i, split_trailing_whitespace(req.context, cont)[1])
             for i, req in enumerate(requests) for cont in req.continuations]
    cont_ids = _continuation_ids(tokenizer, contexts, context_ids, pairs) if pairs else []
    encoded, cursor = [], 0
    for req, ctx in zip(requests, context_ids, strict=True):
        conts = cont_ids[cursor:cursor + len(req.continuations)]
        cursor += len(req.continuations)
        ctx = ctx or [fallback_id]  # an empty context still needs a position to predict from
        packed = sum(max(len(c) - 1, 0) for c in conts)
        ctx, dropped = truncate_left(ctx, max_length - packed)
        encoded.append(_Encoded(ctx, conts, dropped))
    return encoded


def _packed_length(e: _Encoded) -> int:
    return len(e.context) + sum(max(len(c) - 1, 0) for c in e.continuations)


def loglikelihood(lm: LoadedModel, requests: Sequence[LoglikelihoodRequest], batch_size: int = 16,
                  progress: bool = False) -> list[LoglikelihoodResult]:
    """log P(continuation | context) for every continuation of every request, in request order."""
    import torch

    encoded = encode_loglikelihood(lm.tokenizer, requests, lm.max_length, lm.eos_id or lm.pad_id)
    results: list[LoglikelihoodResult | None] = [None] * len(requests)
    batches = length_sorted_batches([_packed_length(e) for e in encoded], batch_size)
    with torch.inference_mode(), progress_bar(len(requests), "loglikelihood", progress) as bar:
        for batch in batches:
            scored = _score_batch(lm, [encoded[i] for i in batch])
            for index, result in zip(batch, scored, strict=True):
                results[index] = result
            bar.update(len(batch))
    return results  # type: ignore[return-value]


def _packed_inputs(lm: LoadedModel, batch: list[_Encoded]):
    """Left-padded packed rows: ids, 4-d mask (True = may attend), position ids, and per row the
    column of the context's last token and the start column of each candidate's packed tokens."""
    import torch

    rows, segments, positions, starts = [], [], [], []
    for e in batch:
        ids, seg, pos, begin = list(e.context), [0] * len(e.context), list(range(len(e.context))), []
        for k, cont in enumerate(e.continuations, start=1):
            begin.append(len(ids))
            body = cont[:-1]
            ids += body
            seg += [k] * len(body)
            pos += range(len(e.context), len(e.context) + len(body))
        rows.append(ids)
        segments.append(seg)
        positions.append(pos)
        starts.append(begin)
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), lm.pad_id, dtype=torch.long)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)  # -1: padding
    position = torch.zeros((len(rows), width), dtype=torch.long)
    for b, (ids, seg, pos) in enumerate(zip(rows, segments, positions, strict=True)):
        input_ids[b, width - len(ids):] = torch.tensor(ids)
        segment[b, width - len(ids):] = torch.tensor(seg)
        position[b, width - len(ids):] = torch.tensor(pos)
    device = lm.device
    segment = segment.to(device)
    query, key = segment[:, :, None], segment[:, None, :]
    causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
    mask = causal & (key != -1) & ((key == 0) | (key == query))
    # A padding query must see something (itself): an all-masked row gives NaN, and NaN values at
    # padded positions would leak into real rows through 0 * NaN in the attention product.
    mask |= torch.eye(width, dtype=torch.bool, device=device) & (query == -1)
    offsets = [width - len(r) for r in rows]
    last_context = [offsets[b] + len(e.context) - 1 for b, e in enumerate(batch)]
    starts = [[offsets[b] + s for s in begin] for b, begin in enumerate(starts)]
    return input_ids.to(device), _attention_mask(lm, mask[:, None]), position.to(device), last_context, starts


def _attention_mask(lm: LoadedModel, mask):
    """The boolean mask as the model's attention implementation wants it (eager adds a float mask)."""
    import torch

    if getattr(lm.model.config, "_attn_implementation", "sdpa") == "eager":
        return torch.zeros(mask.shape, dtype=lm.dtype, device=mask.device).masked_fill(
            ~mask, torch.finfo(lm.dtype).min)
    return mask


def _score_batch(lm: LoadedModel, batch: list[_Encoded]) -> list[LoglikelihoodResult]:
    import torch

    input_ids, mask, positions, last_context, starts = _packed_inputs(lm, batch)
    width = input_ids.shape[1]
    keep = width - min(last_context)  # every column from the earliest context end is needed
    out = lm.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=False,
                   logits_to_keep=keep)
    logprobs = torch.log_softmax(out.logits.float(), dim=-1)
    first_column = width - keep
    # One gather for every scored token of every candidate in the batch, then per-candidate sums.
    rows, columns, targets, owners, counts = [], [], [], [], []
    for b, e in enumerate(batch):
        for cont, start in zip(e.continuations, starts[b], strict=True):
            # Token 0 is predicted at the context's last column, token t>0 at the column of token t-1.
            cols = [last_context[b]] + list(range(start, start + len(cont) - 1)) if cont else []
            rows += [b] * len(cols)
            columns += [c - first_column for c in cols]
            targets += cont
            owners += [len(counts)] * len(cols)
            counts.append(len(cont))
    device = logprobs.device
    rows_t, cols_t, targets_t = (torch.tensor(x, dtype=torch.long, device=device)
                                 for x in (rows, columns, targets))
    owners_t = torch.tensor(owners, dtype=torch.long, device=device)
    token_scores = logprobs[rows_t, cols_t, targets_t]
    misses = (logprobs[rows_t, cols_t].argmax(dim=-1) != targets_t).float()
    sums = torch.zeros(len(counts), device=device).index_add_(0, owners_t, token_scores).tolist()
    missed = torch.zeros(len(counts), device=device).index_add_(0, owners_t, misses).tolist()
    results, cursor = [], 0
    for e in batch:
        n = len(e.continuations)
        results.append(LoglikelihoodResult(tuple(sums[cursor:cursor + n]), tuple(counts[cursor:cursor + n]),
                                           tuple(m == 0 for m in missed[cursor:cursor + n]), e.truncated))
        cursor += n
    return results


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
