"""The context pass: one forward over a batch of contexts, sharing their common few-shot prefix.

k-shot prompts of one job start with the same demonstrations (docs/study.md §5: fixed shots per task),
often most of every context. The longest token prefix a batch shares runs once, its KV cache is kept
for the next batches that share it, and only each context's own suffix runs per row.

Suffixes are right-padded: every pad sits after every real token, so causal attention alone keeps
pads out of real tokens' view (no padding mask; without a shared prefix the forward takes the fast
unmasked causal kernels). Pad columns do enter the cache: whoever reads it later masks the columns at
or after each row's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evals.batching import attention_mask
from evals.model_loading import LoadedModel

# A shared prefix shorter than this is not worth a separate forward and a cache copy.
MIN_SHARED_PREFIX = 16


@dataclass
class PrefixCache:
    """The KV of the last shared prefix computed, per layer `(keys, values)` of batch size one.

    One per engine call; holding only the last prefix bounds its memory (a job's batches share one).
    """

    ids: tuple[int, ...] = ()
    layers: list[tuple[Any, Any]] = field(default_factory=list)
    runs: int = 0  # prefix forwards done (tests check the prefix is not recomputed per batch)

    def get(self, lm: LoadedModel, prefix: Sequence[int]) -> list[tuple[Any, Any]]:
        """The KV of the model's virtual tokens (if any) followed by `prefix`."""
        key = tuple(prefix)
        if key != self.ids or not self.layers:
            import torch

            cache = new_cache(lm)
            ids = torch.tensor([list(key)], dtype=torch.long, device=lm.device)
            positions = torch.arange(lm.prefix_length + len(key), device=lm.device)[None, :]
            if lm.prefix_length:
                embeds = lm.model.get_input_embeddings()(ids)
                embeds = torch.cat([lm.virtual_prefix[None].to(embeds.dtype), embeds], dim=1)
                lm.model(inputs_embeds=embeds, position_ids=positions, past_key_values=cache, use_cache=True,
                         logits_to_keep=1)
            else:
                lm.model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True,
                         logits_to_keep=1)
            self.ids, self.layers = key, [(layer.keys, layer.values) for layer in cache.layers]
            self.runs += 1
        return self.layers


def new_cache(lm: LoadedModel):
    from transformers import DynamicCache

    return DynamicCache(config=lm.model.config)


def shared_prefix_length(contexts: Sequence[Sequence[int]]) -> int:
    """Tokens every context starts with, leaving each at least one of its own (whose logits we read)."""
    first, limit = contexts[0], min(len(c) for c in contexts) - 1
    n = 0
    while n < limit and all(c[n] == first[n] for c in contexts):
        n += 1
    return n


def right_pad(sequences: Sequence[Sequence[int]], pad_id: int, device: Any):
    """Right-padded `input_ids` and each row's length."""
    import torch

    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
    lengths = torch.tensor([len(seq) for seq in sequences], dtype=torch.long)
    return ids.to(device), lengths.to(device)


def prefill(lm: LoadedModel, contexts: Sequence[Sequence[int]], keep_cache: bool,
            prefixes: PrefixCache | None = None):
    """Run contexts (each at least one token long) through the model.

    Returns the logits after each context's last token `[B, vocab]`, the KV cache (a DynamicCache
    whose column c of row b is real iff c < lengths[b]; None unless `keep_cache`) and the lengths.
    A model with virtual tokens has them in the cache's first columns: lengths and positions count them.
    """
    import torch

    shared = shared_prefix_length(contexts) if prefixes is not None and len(contexts) > 1 else 0
    if shared < MIN_SHARED_PREFIX:
        shared = 0
    offset = lm.prefix_length + shared  # cache columns every row reads before its own suffix
    if offset and prefixes is None:
        prefixes = PrefixCache()
    ids, suffix_lengths = right_pad([c[shared:] for c in contexts], lm.pad_id, lm.device)
    batch, width = ids.shape
    positions = (offset + torch.arange(width, device=lm.device)).expand(batch, -1)
    last = (suffix_lengths - 1)[:, None]  # one logits row per context: its last token
    cache = new_cache(lm) if keep_cache or offset else None
    mask = None
    if offset:
        for layer_idx, (keys, values) in enumerate(prefixes.get(lm, contexts[0][:shared])):
            cache.update(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1), layer_idx)
        # Suffix token i sees the whole prefix and suffix tokens 0..i (pads only ever come later).
        columns = torch.arange(offset + width, device=lm.device)
        mask = attention_mask(lm, (columns[None, :] <= offset + torch.arange(width, device=lm.device)[:, None])
                              [None, None].expand(batch, 1, -1, -1))
    out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                   use_cache=cache is not None, logits_to_keep=last)
    return out.logits[:, 0, :], cache if keep_cache else None, suffix_lengths + offset
