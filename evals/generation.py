"""Batched generation with a KV cache and early stopping: greedy (`generate`) or seeded sampling (`sample`).

The contexts run through `evals.prefill` (shared few-shot prefix once, right-padded suffixes); their
cache is copied into a preallocated one, and every row writes its new tokens at the same columns after
the widest context, with its own positions and its pad gap masked at every step. Rows leave the batch as soon as they hit eos or a stop sequence (their cache rows are dropped), and the
batch ends when none is left, so a batch costs as many steps as its longest answer, not always
`max_new_tokens`.

Sampling (temperature, top-p) draws every request's tokens from its own `torch.Generator`, seeded per
request, one uniform per generated token, so a request's sample does not depend on which batch it ran in
(nor on the batch size), and a rerun with the same seeds draws the same samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from evals.requests import GenerationRequest, GenerationResult, cut_at_stop


@once_per_distinct_request
def generate(lm: LoadedModel, requests: Sequence[GenerationRequest], batch_size: int = 16,
             progress: bool = False, faithful: bool = False) -> list[GenerationResult]:
    """Greedy continuations, in request order.

    Default: a context longer than `lm.max_length - max_new_tokens` is cut from the left. `faithful`
    (the study's `eval/predict.py`): the whole context is fed, however long (positions past the trained
    window as the model computes them), and the text is the study's slice
    (`faithful_text`); `past_window` says whether context + generated tokens ran past the window.
    """
    return _decode_all(lm, requests, batch_size, progress, faithful, None)


@dataclass(frozen=True)
class Sampling:
    """How `sample` draws each token: softmax(logits / temperature), restricted to the smallest set of
    most likely tokens whose probability reaches `top_p` (nucleus sampling, Holtzman et al. 2020)."""

    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (greedy is `generate`), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def sample(lm: LoadedModel, requests: Sequence[GenerationRequest], sampling: Sampling, seeds: Sequence[int],
           batch_size: int = 16, progress: bool = False) -> list[GenerationResult]:
    """Sampled continuations, in request order; request i draws from a generator seeded with `seeds[i]`.

    Unlike `generate`, equal requests are not merged: N copies of a prompt with N seeds are N samples.
    Contexts longer than `lm.max_length - max_new_tokens` are cut from the left, as in `generate`.
    """
    import torch

    if len(seeds) != len(requests):
        raise ValueError(f"{len(seeds)} seeds for {len(requests)} requests")
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    return _decode_all(lm, requests, batch_size, progress, False, _Sampler(sampling, generators))


class _Sampler:
    """Picks the next token of every active row, each from its own request's generator."""

    def __init__(self, sampling: Sampling, generators: list) -> None:
        self.sampling, self.generators = sampling, generators

    def __call__(self, logits, rows: list[int]):
        import torch

        # float64 on the CPU: the draw compares a uniform against a cumulative sum, and a row's sum must
        # not depend on the device or on the other rows.
        scaled = logits.double().cpu() / self.sampling.temperature
        probs, order = torch.sort(torch.softmax(scaled, dim=-1), dim=-1, descending=True, stable=True)
        cumulative = probs.cumsum(dim=-1)
        if self.sampling.top_p < 1:
            # keep a token while the mass before it is below top_p: the most likely one always stays
            probs = probs.masked_fill(cumulative - probs >= self.sampling.top_p, 0.0)
            cumulative = probs.cumsum(dim=-1)
        uniforms = torch.stack([torch.rand((), generator=self.generators[row], dtype=torch.float64)
                                for row in rows])
        picked = torch.searchsorted(cumulative, (uniforms * cumulative[:, -1])[:, None], right=True)
        picked = picked.clamp(max=probs.shape[-1] - 1)
        # a uniform landing past the last kept token's edge (rounding) falls back to the last kept one
        picked = torch.minimum(picked, (probs > 0).sum(dim=-1, keepdim=True) - 1)
        return order.gather(-1, picked).squeeze(-1).to(logits.device)


def _decode_all(lm: LoadedModel, requests: Sequence[GenerationRequest], batch_size: int, progress: bool,
                faithful: bool, sampler: _Sampler | None) -> list[GenerationResult]:
    import torch

    contexts = lm.tokenizer([r.context for r in requests])["input_ids"] if requests else []
    prepared = []
    for req, ids in zip(requests, contexts, strict=True):
        ids = list(ids) or [lm.empty_context_id]
        prepared.append((ids, 0) if faithful else truncate_left(ids, lm.max_length - req.max_new_tokens))
    results: list[GenerationResult | None] = [None] * len(requests)
    prefixes = PrefixCache()
    with torch.inference_mode(), progress_bar(len(requests), "generate", progress) as bar:
        for batch in length_sorted_batches([len(ids) for ids, _ in prepared], batch_size):
            # the sampler sees batch rows; map them back to requests (each request keeps its generator)
            pick = None if sampler is None else _batch_picker(sampler, batch)
            outputs = _generate_batch(lm, [prepared[i][0] for i in batch], [requests[i] for i in batch], prefixes,
                                      pick)
            for row, index in enumerate(batch):
                tokens, reason = outputs[row]
                context_ids, dropped = prepared[index]
                if faithful:
                    raw = faithful_text(lm.tokenizer, requests[index].context, context_ids, tokens)
                else:
                    raw = lm.tokenizer.decode(tokens, skip_special_tokens=True)
                text, _ = cut_at_stop(raw, requests[index].stop)
                past = len(context_ids) + len(tokens) > lm.trained_window
                results[index] = GenerationResult(text, raw, len(tokens), reason, dropped, past)
            bar.update(len(batch))
    return results  # type: ignore[return-value]


def faithful_text(tokenizer, prompt: str, prompt_ids: Sequence[int], generated: Sequence[int]) -> str:
    """The study's prediction text: the decoded full sequence (prompt + generation), sliced by the
    prompt string's length in characters (`output[len(prompt):]`, eval/predict.py), decoded as
    transformers 4.40 did by default: special tokens skipped, tokenization spaces cleaned up
    (`clean_up_tokenization_spaces=True`, which transformers 5 no longer applies to BPE). A cleanup
    inside the prompt shifts the slice, as it did in the study."""
    # transformers 5 ignores clean_up_tokenization_spaces=True for BPE tokenizers: decode raw, then clean
    # up with 4.40's own rule.
    full = tokenizer.decode(list(prompt_ids) + list(generated), skip_special_tokens=True,
                            clean_up_tokenization_spaces=False)
    return clean_up_tokenization(full)[len(prompt):]


def clean_up_tokenization(text: str) -> str:
    """The space clean-up that transformers 4.40's `decode` applied by default (the study ran under it;
    transformers 5 skips it for BPE tokenizers even when asked): no space before . ? ! , or a clitic."""
    return (text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
            .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
            .replace(" 've", "'ve").replace(" 're", "'re"))


def _batch_picker(sampler: _Sampler, batch: list[int]) -> Callable:
    return lambda logits, rows: sampler(logits, [batch[row] for row in rows])


def _generate_batch(lm: LoadedModel, contexts: list[list[int]], requests: list[GenerationRequest],
                    prefixes: PrefixCache, pick: Callable | None = None) -> list[tuple[list[int], str]]:
    """Decode one batch; `pick(logits, rows)` chooses the next tokens of the batch rows `rows` (None: greedy)."""
    import torch

    budget = max(r.max_new_tokens for r in requests)
    logits, prefilled, lengths = prefill(lm, contexts, True, prefixes)
    width = prefilled.get_seq_length()
    cache = _preallocated(lm, prefilled, width + budget)
    # The cache columns each row may read: its context's real columns, then the tokens it generates,
    # written at columns width, width + 1, ... for every row alike.
    visible = torch.zeros((len(contexts), width + budget), dtype=torch.bool, device=lm.device)
    visible[:, :width] = torch.arange(width, device=lm.device)[None, :] < lengths[:, None]
    next_tokens = logits.argmax(dim=-1) if pick is None else pick(logits, list(range(len(contexts))))
    next_positions = lengths
    generated: list[list[int]] = [[] for _ in contexts]
    reasons = ["length"] * len(contexts)
    active = list(range(len(contexts)))  # batch rows still generating, in cache order
    eos_id = lm.eos_id
    stop_check = _StopCheck(lm.tokenizer)
    for step in range(budget):
        tokens = next_tokens.tolist()
        keep = []
        for slot, row in enumerate(active):
            token = tokens[slot]
            if eos_id is not None and token == eos_id:
                reasons[row] = "eos"
                continue
            generated[row].append(token)
            if requests[row].stop and stop_check(generated[row], requests[row].stop):
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
            _select_rows(cache, index)
            visible = visible.index_select(0, index)
            next_positions = next_positions.index_select(0, index)
            next_tokens = next_tokens.index_select(0, index)
            active = [active[slot] for slot in keep]
        visible[:, width + step] = True
        out = lm.model(input_ids=next_tokens[:, None], attention_mask=attention_mask(lm, visible[:, None, None, :]),
                       position_ids=next_positions[:, None], past_key_values=cache, use_cache=True)
        next_tokens = out.logits[:, -1, :].argmax(dim=-1) if pick is None else pick(out.logits[:, -1, :], active)
        next_positions = next_positions + 1
    return [(generated[row], reasons[row]) for row in range(len(contexts))]


def _preallocated(lm: LoadedModel, prefilled, length: int):
    """A static cache of `length` columns holding the prefilled ones: each decoding step writes one
    column in place instead of concatenating (copying) the whole cache per layer."""
    from transformers import StaticCache

    cache = StaticCache(config=lm.model.config, max_cache_len=length)
    for layer_idx, layer in enumerate(prefilled.layers):
        cache.update(layer.keys, layer.values, layer_idx)
    return cache


def _select_rows(cache, index) -> None:
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, index)
        layer.values = layer.values.index_select(0, index)


def _hit_stop(tokenizer, tokens: list[int], stop: tuple[str, ...]) -> bool:
    # Only the tail can contain a stop sequence that was not there one step ago; decoding a short
    # window keeps the check cheap while still catching sequences split across tokens.
    window = tokenizer.decode(tokens[-(max(len(s) for s in stop) + 2):], skip_special_tokens=True)
    return any(seq and seq in window for seq in stop)


class _StopCheck:
    """Whether the newest token completed a stop sequence.

    Decoding a window (`_hit_stop`) is the exact test. A new stop sequence must end in the newest
    token's text, so a token whose text holds no stop sequence's last character skips it; the
    per-token texts are cached. Tokens that decode to partial characters, and stop sequences that end
    in a space (SentencePiece drops a lone token's leading space), always take the exact test.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pieces: dict[int, str] = {}
        self.endings: dict[tuple[str, ...], frozenset[str] | None] = {}

    def __call__(self, tokens: list[int], stop: tuple[str, ...]) -> bool:
        if stop not in self.endings:
            last = frozenset(seq[-1] for seq in stop if seq)
            self.endings[stop] = None if " " in last else last
        endings = self.endings[stop]
        if endings is not None:
            token = tokens[-1]
            if token not in self.pieces:
                self.pieces[token] = self.tokenizer.decode([token], skip_special_tokens=True)
            piece = self.pieces[token]
            if piece and "\ufffd" not in piece and not any(ch in piece for ch in endings):
                return False
        return _hit_stop(self.tokenizer, tokens, stop)
