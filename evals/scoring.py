"""Scoring an `EvalSet`: build requests, run them through the engine, turn answers into per-example records.

Scoring never sees batching: it hands whole request lists to `evals.loglikelihood` / `evals.generation`.

- classification, fixed: every candidate's full continuation log-likelihood; the best wins.
- classification, faithful: the study's next-token argmax over the concatenated token ids of its
  verbalizers, mapped back to the verbalizer string, then its `strip_labels` (docs/study.md §5.2).
- multiple choice: option log-likelihood; `acc` (raw) and `acc_norm` (per character, as lm-eval).
- generation: greedy decoding, stop sequences in fixed mode only, scored by the task's metric: ROUGE-L F1
  (`rouge_score`), or exact match / F1 for declared tasks (`ptft.tasks.metrics`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evals.generation import generate
from evals.loglikelihood import loglikelihood, next_token_logprobs
from evals.model_loading import LoadedModel
from evals.requests import GenerationRequest, LoglikelihoodRequest, NextTokenRequest

# The order in which the study's `strip_labels` looks for label words in a prediction
# (eval/eval_pred.py): the first word found wins. LLMBar is deliberately absent: it is not stripped.
STRIP_ORDER: dict[str, tuple[str, ...]] = {
    "nli": ("contradiction", "neutral", "entailment"),
    "paraphrase": ("no", "yes"),
}


@dataclass
class ScoredSet:
    """Per-example scores of one eval set, and the records that explain them."""

    metric: str
    scores: np.ndarray  # the main metric per example (0/1 or ROUGE-L F1)
    records: list[dict[str, Any]]
    secondary: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. {"acc_norm": ...}
    counts: dict[str, int] = field(default_factory=dict)


def scoring_kind(task_type: str) -> str:
    """How a task type is scored: "classification", "multiple_choice" or "generation"."""
    if task_type in ("classification", "chat"):
        return "classification"
    if task_type in ("multiple_choice", "generation"):
        return task_type
    raise ValueError(f"no scoring rule for task type {task_type!r}")


def score_eval_set(lm: LoadedModel, eval_set: Any, mode: str, batch_size: int = 16,
                   max_new_tokens: int = 60, progress: bool = False) -> ScoredSet:
    """Score every example of `eval_set` (a `tasks.EvalSet`) under `mode` ("fixed" or "faithful")."""
    kind = scoring_kind(eval_set.task.task_type)
    faithful = mode == "faithful"  # the study fed every prompt whole: no truncation, past_window counted
    if kind == "generation":
        stop = tuple(eval_set.stop_sequences) if mode == "fixed" else ()
        return score_generation(lm, eval_set, stop, max_new_tokens, batch_size, progress, faithful)
    if kind == "classification" and faithful:
        return score_faithful_classification(lm, eval_set, batch_size, progress)
    return score_by_loglikelihood(lm, eval_set, kind, batch_size, progress, faithful)


def _base_record(example: Any) -> dict[str, Any]:
    return {"example_id": example.example_id, "prompt": example.context, "gold": example.target,
            "gold_index": example.gold_index, "shots_used": example.shots_used,
            "shots_dropped": example.shots_dropped}


def score_by_loglikelihood(lm: LoadedModel, eval_set: Any, kind: str, batch_size: int = 16,
                           progress: bool = False, faithful: bool = False) -> ScoredSet:
    """Classification (fixed) and multiple choice: the candidate with the highest log-likelihood wins."""
    examples = eval_set.examples
    for example in examples:
        if not example.candidates or example.gold_index is None:
            raise ValueError(f"{eval_set.task.name}: example {example.example_id} has no candidates or gold")
    answers = loglikelihood(lm, [LoglikelihoodRequest(e.context, tuple(e.candidates)) for e in examples],
                            batch_size=batch_size, progress=progress, faithful=faithful)
    acc, acc_norm, records, truncated = [], [], [], 0
    for example, answer in zip(examples, answers, strict=True):
        lls = np.asarray(answer.loglikelihoods)
        best = int(np.argmax(lls))
        # acc_norm divides by the continuation's length in characters, as lm-eval's acc_norm does.
        lengths = np.asarray([max(1, len(c)) for c in example.candidates], dtype=np.float64)
        best_norm = int(np.argmax(lls / lengths))
        acc.append(float(best == example.gold_index))
        acc_norm.append(float(best_norm == example.gold_index))
        truncated += answer.truncated_tokens > 0
        record = _base_record(example)
        record.update(
            prediction=example.candidates[best], prediction_index=best, score=acc[-1],
            candidates=[{"continuation": c, "loglikelihood": ll, "tokens": n, "is_greedy": g}
                        for c, ll, n, g in zip(example.candidates, answer.loglikelihoods,
                                               answer.token_counts, answer.is_greedy, strict=True)],
            truncated_tokens=answer.truncated_tokens,
        )
        if kind == "multiple_choice":
            record.update(prediction_norm=example.candidates[best_norm], score_norm=acc_norm[-1])
        records.append(record)
    metric = eval_set.task.metric
    secondary = {"acc_norm": np.asarray(acc_norm)} if kind == "multiple_choice" else {}
    past = sum(a.past_window for a in answers)
    return ScoredSet(metric, np.asarray(acc), records, secondary,
                     {"truncated_examples": truncated, "past_window": past})


def verbalizer_tokens(tokenizer, verbalizers: tuple[str, ...]) -> list[tuple[int, str]]:
    """(token id, verbalizer) for every token of every verbalizer, concatenated in order (the study
    tokenized with default special tokens and concatenated the ids; a multi-token word competes
    through all of its sub-tokens)."""
    ids = tokenizer(list(verbalizers))["input_ids"]
    return [(int(token), word) for word, word_ids in zip(verbalizers, ids, strict=True) for token in word_ids]


def strip_label(prediction: str, family: str, label_words: tuple[str, ...]) -> int | None:
    """The label index the study's `strip_labels` gives a raw prediction (None: no label / wrong).

    Families without a strip rule (LLMBar) compare the raw string, so ' 1' never equals '1'.
    """
    order = STRIP_ORDER.get(family)
    if order is None:
        return label_words.index(prediction) if prediction in label_words else None
    for word in order:
        if word in prediction:
            return label_words.index(word) if word in label_words else None
    return None


def score_faithful_classification(lm: LoadedModel, eval_set: Any, batch_size: int = 16,
                                  progress: bool = False) -> ScoredSet:
    """The study's next-word constrained prediction (docs/study.md §5.2)."""
    task = eval_set.task
    verbalizers = tuple(eval_set.faithful_verbalizers) or tuple(task.label_words or ())
    if not verbalizers:
        raise ValueError(f"{task.name}: no verbalizers for faithful scoring")
    pairs = verbalizer_tokens(lm.tokenizer, verbalizers)
    token_ids = tuple(token for token, _ in pairs)
    label_words = tuple(task.label_words or ())
    examples = eval_set.examples
    answers = next_token_logprobs(lm, [NextTokenRequest(e.context, token_ids) for e in examples],
                                  batch_size=batch_size, progress=progress, faithful=True)
    lengths = [len(ids) for ids in lm.tokenizer([e.context for e in examples])["input_ids"]] if examples else []
    past = sum(n > lm.trained_window for n in lengths)
    scores, records, truncated = [], [], 0
    for example, (logprobs, dropped) in zip(examples, answers, strict=True):
        position = int(np.argmax(logprobs))  # first maximum, like torch.argmax over the study's list
        raw = pairs[position][1]
        index = strip_label(raw, task.family, label_words)
        scores.append(float(index is not None and index == example.gold_index))
        truncated += dropped > 0
        record = _base_record(example)
        record.update(
            prediction=raw, prediction_index=index, score=scores[-1],
            candidates=[{"continuation": word, "token_id": token, "next_token_logprob": lp}
                        for (token, word), lp in zip(pairs, logprobs, strict=True)],
            truncated_tokens=dropped,
        )
        records.append(record)
    return ScoredSet(task.metric, np.asarray(scores), records, {},
                     {"truncated_examples": truncated, "past_window": past})


def score_generation(lm: LoadedModel, eval_set: Any, stop: tuple[str, ...], max_new_tokens: int = 60,
                     batch_size: int = 16, progress: bool = False, faithful: bool = False) -> ScoredSet:
    """Greedy generation scored against the gold target by the task's metric (ROUGE-L F1 for the study's
    tasks; exact match or F1 for declared ones: `ptft.tasks.metrics`)."""
    from ptft import tasks
    from ptft.tasks.metrics import text_metric

    metric = text_metric(eval_set.task.metric)

    examples = eval_set.examples
    # Fixed mode ends the context where training put the boundary ("Summary:" + " text"), so the model
    # never sees a lone trailing-space token; faithful mode keeps the study's context byte for byte.
    fixed = eval_set.mode == "fixed"
    contexts = [tasks.token_boundary(e.context, "")[0] if fixed else e.context for e in examples]
    outputs = generate(lm, [GenerationRequest(c, stop, max_new_tokens) for c in contexts],
                       batch_size=batch_size, progress=progress, faithful=faithful)
    scores, records, truncated = [], [], 0
    for example, out in zip(examples, outputs, strict=True):
        if fixed:
            out = dataclasses.replace(out, text=out.text.lstrip())
        scores.append(metric(out.text, example.target))
        truncated += out.truncated_tokens > 0
        record = _base_record(example)
        record.update(prediction=out.text, score=scores[-1], finish_reason=out.finish_reason,
                      generated_tokens=out.num_tokens, truncated_tokens=out.truncated_tokens)
        if out.raw_text != out.text:
            record["raw_prediction"] = out.raw_text
        records.append(record)
    past = sum(out.past_window for out in outputs)
    return ScoredSet(eval_set.task.metric, np.asarray(scores), records, {},
                     {"truncated_examples": truncated, "past_window": past})
