"""Requests: what the scoring code asks of a language model, with no notion of batching.

Scoring (`evals/scoring.py`) turns an `EvalSet` into these; the engine (`evals/loglikelihood.py`,
`evals/generation.py`) tokenizes, sorts, batches and runs them, and hands back one answer per request
in the original order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score every continuation after one shared context: log P(continuation | context), summed over tokens."""

    context: str
    continuations: tuple[str, ...]


@dataclass(frozen=True)
class NextTokenRequest:
    """Log-probabilities of some token ids at the position right after `context` (the study's scoring)."""

    context: str
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class GenerationRequest:
    """Greedy continuation of `context`; stops at eos, at any of `stop` (text is cut there), or at the budget."""

    context: str
    stop: tuple[str, ...] = ()
    max_new_tokens: int = 60


@dataclass(frozen=True)
class LoglikelihoodResult:
    """Per continuation: summed log-likelihood, token count, and whether it is the greedy continuation."""

    loglikelihoods: tuple[float, ...]
    token_counts: tuple[int, ...]
    is_greedy: tuple[bool, ...]
    truncated_tokens: int = 0  # context tokens dropped from the left to fit the model's length
    past_window: bool = False  # some candidate was fed past the model's trained window (faithful mode)


@dataclass(frozen=True)
class GenerationResult:
    text: str  # decoded continuation, cut at the first stop sequence
    raw_text: str  # decoded continuation before the cut
    num_tokens: int  # tokens generated (the eos, when hit, not counted)
    finish_reason: str  # "stop" | "eos" | "length"
    truncated_tokens: int = 0
    past_window: bool = False  # context + generated tokens ran past the model's trained window


def split_trailing_whitespace(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace onto the continuation.

    Prompts end with ": " but the model saw ":" + " word" when it was trained (BPE merges the space into
    the next word), so the label is scored as " word" after ":".
    """
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + continuation


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to the earliest stop sequence; whether one was found."""
    cut = len(text)
    for seq in stop:
        if seq:
            pos = text.find(seq)
            if pos != -1:
                cut = min(cut, pos)
    return text[:cut], cut < len(text)
