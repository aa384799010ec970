"""How a generated answer is scored against its gold text: ROUGE-L, exact match and F1 (docs/tasks.md).

ROUGE-L is Google's `rouge_score` (as `evaluate`'s rouge, no stemmer), the study's metric for generation.
Exact match and F1 are SQuAD's: both sides are normalised (lower case, punctuation and the articles
a/an/the removed, whitespace collapsed), then EM compares the strings and F1 the bags of tokens. The
normalisation is the official SQuAD v2.0 evaluation script's `normalize_answer`, and F1 follows that
script where an answer normalises to nothing (1.0 when both are empty, else 0.0), so an empty
prediction never divides by zero.

Classification and multiple choice are scored by accuracy over the candidates; that needs the model's
log-likelihoods, so it lives with the scorer (`evals/scoring.py`), not here.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable

# the metric names a task declares; multiple choice records accuracy as "acc" (with "acc_norm"), as the
# built-in multiple-choice tasks do
METRICS = ("accuracy", "rougeL", "exact_match", "f1")
GENERATION_METRICS = ("rougeL", "exact_match", "f1")

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)
_ROUGE_SCORER = None


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when prediction and reference are equal after `normalize_answer`, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1(prediction: str, reference: str) -> float:
    """Token-level F1 of the normalised texts (SQuAD): harmonic mean of token precision and recall."""
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of one prediction by `rouge_score` (its default tokenizer, no stemmer)."""
    global _ROUGE_SCORER
    if _ROUGE_SCORER is None:  # building the scorer loads its tokenizer once per process
        from rouge_score import rouge_scorer

        _ROUGE_SCORER = rouge_scorer.RougeScorer(["rougeL"])
    return float(_ROUGE_SCORER.score(reference, prediction)["rougeL"].fmeasure)


_TEXT_METRICS: dict[str, Callable[[str, str], float]] = {"rougeL": rouge_l, "exact_match": exact_match, "f1": f1}


def text_metric(name: str) -> Callable[[str, str], float]:
    """The `(prediction, reference) -> score` function of a generation metric; ValueError otherwise."""
    try:
        return _TEXT_METRICS[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a generation metric; choose from {GENERATION_METRICS}") from None
