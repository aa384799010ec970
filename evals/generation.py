"""Batched greedy generation with a KV cache, left padding and early stopping.

Rows leave the batch as soon as they hit eos or a stop sequence (their cache rows are dropped), and the
batch ends when none is left, so a batch costs as many steps as its longest answer, not always
`max_new_tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence

from evals.batching import left_pad, length_sorted_batches, progress_bar, truncate_left
from evals.model_loading import LoadedModel
from evals.requests import GenerationRequest, GenerationResult, cut_at_stop


def generate(lm: LoadedModel, requests: Sequence[GenerationRequest], batch_size: int = 16,
             progress: bool = False) -> list[GenerationResult]:
    """Greedy continuations, in request order."""
    import torch

    contexts = lm.tokenizer([r.context for r in requests])["input_ids"] if requests else []
    prepared = []
    for req, ids in zip(requests, contexts, strict=True):
        budget = lm.max_length - req.max_new_tokens
        prepared.append(truncate_left(list(ids) or [lm.eos_id or lm.pad_id], budget))
    results: list[GenerationResult | None] = [None] * len(requests)
    with torch.inference_mode(), progress_bar(len(requests), "generate", progress) as bar:
        for batch in length_sorted_batches([len(ids) for ids, _ in prepared], batch_size):
            outputs = _generate_batch(lm, [prepared[i][0] for i in batch], [requests[i] for i in batch])
            for row, index in enumerate(batch):
                tokens, reason = outputs[row]
                raw = lm.tokenizer.decode(tokens, skip_special_tokens=True)
                text, _ = cut_at_stop(raw, requests[index].stop)
                results[index] = GenerationResult(text, raw, len(tokens), reason, prepared[index][1])
            bar.update(len(batch))
    return results  # type: ignore[return-value]


def _generate_batch(lm: LoadedModel, contexts: list[list[int]],
                    requests: list[GenerationRequest]) -> list[tuple[list[int], str]]:
    import torch

    budget = max(r.max_new_tokens for r in requests)
    ids, mask, positions = left_pad(contexts, lm.pad_id, lm.device)
    width = ids.shape[1]
    # The attention mask of every step is a prefix of this one: no per-step concatenation.
    full_mask = torch.cat([mask, mask.new_ones((len(contexts), budget))], dim=1)
    out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                   logits_to_keep=1)
    cache = out.past_key_values
    next_tokens = out.logits[:, -1, :].argmax(dim=-1)
    next_positions = positions[:, -1] + 1
    generated: list[list[int]] = [[] for _ in contexts]
    reasons = ["length"] * len(contexts)
    active = list(range(len(contexts)))  # batch rows still generating, in cache order
    eos_id = lm.eos_id
    for step in range(budget):
        tokens = next_tokens.tolist()
        keep = []
        for slot, row in enumerate(active):
            token = tokens[slot]
            if eos_id is not None and token == eos_id:
                reasons[row] = "eos"
                continue
            generated[row].append(token)
            if requests[row].stop and _hit_stop(lm.tokenizer, generated[row], requests[row].stop):
                reasons[row] = "stop"
                continue
            if len(generated[row]) >= requests[row].max_new_tokens:
                continue
            keep.append(slot)
        if not keep or step == budget - 1:
            break
        if len(keep) < len(active):
            # Finished rows leave the batch: the remaining steps cost only what is still running.
            index = torch.tensor(keep, device=lm.device)
            cache.batch_select_indices(index)
            full_mask = full_mask.index_select(0, index)
            next_positions = next_positions.index_select(0, index)
            next_tokens = next_tokens.index_select(0, index)
            active = [active[slot] for slot in keep]
        out = lm.model(input_ids=next_tokens[:, None], attention_mask=full_mask[:, :width + step + 1],
                       position_ids=next_positions[:, None], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        next_tokens = out.logits[:, -1, :].argmax(dim=-1)
        next_positions = next_positions + 1
    return [(generated[row], reasons[row]) for row in range(len(contexts))]


def _hit_stop(tokenizer, tokens: list[int], stop: tuple[str, ...]) -> bool:
    # Only the tail can contain a stop sequence that was not there one step ago; decoding a short
    # window keeps the check cheap while still catching sequences split across tokens.
    window = tokenizer.decode(tokens[-(max(len(s) for s in stop) + 2):], skip_special_tokens=True)
    return any(seq and seq in window for seq in stop)
