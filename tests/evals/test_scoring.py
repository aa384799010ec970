"""Scoring rules: fixed vs faithful classification, multiple choice acc/acc_norm, ROUGE-L."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer

from evals.scoring import (
    score_by_loglikelihood,
    score_eval_set,
    score_faithful_classification,
    strip_label,
    verbalizer_tokens,
)
from ptft.tasks import EvalExample, EvalSet, get_task
from ptft.tasks.metrics import rouge_l

NLI_WORDS = ("entailment", "neutral", "contradiction")
NLI_VERBALIZERS = NLI_WORDS + tuple(" " + w for w in NLI_WORDS)
PROMPTS = [
    "### Input_1: The cat sat on the mat.\n ### Input_2: A cat sat.\n ### Inference: ",
    "### Input_1: A man plays a guitar.\n ### Input_2: A man reads a book.\n ### Inference: ",
    "### Input_1: A woman reads a book in the park.\n ### Input_2: Nobody reads.\n ### Inference: ",
    "Consider the following texts: Text 1: The dog runs. Text 2: An animal moves. The relation is ",
    "The quick brown fox jumps over the lazy dog. ### Inference: ",
    "entailment neutral contradiction yes no ### Inference: ",
    "### Summary: A cat sat. ### Inference: ",
    "Answer A Answer B Answer C Question ### Inference: ",
]


def make_set(task: str, prompts: list[str], candidates: tuple[str, ...], golds: list[int], mode: str,
             targets: list[str] | None = None) -> EvalSet:
    """A hand-made eval set with the real task spec (no data files needed)."""
    examples = tuple(
        EvalExample(f"{task}/{i}", p, targets[i] if targets else candidates[g], g, candidates, 0, 0)
        for i, (p, g) in enumerate(zip(prompts, golds, strict=True))
    )
    return EvalSet(task=get_task(task), fmt="default", mode=mode, shots=0, examples=examples,
                   stop_sequences=(), faithful_verbalizers=NLI_VERBALIZERS if "nli" in task else (),
                   checksum="test", counts={})


def full_loglikelihood(lm, context: str, continuation: str) -> float:
    stripped = context.rstrip()
    ctx = lm.tokenizer(stripped)["input_ids"]
    whole = lm.tokenizer(stripped + context[len(stripped):] + continuation)["input_ids"]
    with torch.no_grad():
        logprobs = torch.log_softmax(lm.model(torch.tensor([whole])).logits[0].float(), -1)
    return sum(float(logprobs[i - 1, whole[i]]) for i in range(len(ctx), len(whole)))


def study_next_word(lm, prompt: str, force_words: tuple[str, ...]) -> str:
    """The study's get_next_word_predictions + convert_pred_ids, written out for one prompt."""
    per_word = lm.tokenizer(list(force_words)).input_ids
    candidate_ids = [t for ids in per_word for t in ids]
    owner = [w for w, ids in zip(force_words, per_word, strict=True) for _ in ids]
    with torch.no_grad():
        logits = lm.model(torch.tensor([lm.tokenizer(prompt).input_ids])).logits[0, -1]
    probs = torch.softmax(logits, dim=-1)[candidate_ids]
    return owner[int(torch.argmax(probs))]


def test_strip_label_follows_the_study():
    assert strip_label(" entailment", "nli", NLI_WORDS) == 0
    assert strip_label("contradiction or neutral", "nli", NLI_WORDS) == 2  # contradiction is looked for first
    assert strip_label("contradiction", "nli", ("entailment", "neutral")) is None  # RTE has no contradiction
    assert strip_label(" no", "paraphrase", ("no", "yes")) == 0
    assert strip_label("yes", "paraphrase", ("no", "yes")) == 1
    assert strip_label("1", "llmbar", ("1", "2")) == 0
    assert strip_label(" 1", "llmbar", ("1", "2")) is None  # LLMBar is not stripped: a leading space is wrong


def test_verbalizer_tokens_concatenate_every_sub_token(tiny_lm):
    pairs = verbalizer_tokens(tiny_lm.tokenizer, NLI_VERBALIZERS)
    per_word = tiny_lm.tokenizer(list(NLI_VERBALIZERS)).input_ids
    assert [t for t, _ in pairs] == [t for ids in per_word for t in ids]
    assert any(len(ids) > 1 for ids in per_word)  # the tiny tokenizer splits some label words


def test_fixed_and_faithful_classification(tiny_lm):
    golds = [i % 3 for i in range(len(PROMPTS))]
    fixed = score_by_loglikelihood(tiny_lm, make_set("mnli_matched", PROMPTS, NLI_WORDS, golds, "fixed"),
                                   "classification", batch_size=3)
    faithful = score_faithful_classification(
        tiny_lm, make_set("mnli_matched", PROMPTS, NLI_WORDS, golds, "faithful"), batch_size=3)
    fixed_preds, faithful_preds = [], []
    for prompt, gold, f_rec, s_rec in zip(PROMPTS, golds, fixed.records, faithful.records, strict=True):
        lls = [full_loglikelihood(tiny_lm, prompt, c) for c in NLI_WORDS]
        assert [c["loglikelihood"] for c in f_rec["candidates"]] == pytest.approx(lls, abs=1e-4)
        assert f_rec["prediction_index"] == int(np.argmax(lls))
        assert f_rec["score"] == float(np.argmax(lls) == gold)
        raw = study_next_word(tiny_lm, prompt, NLI_VERBALIZERS)
        assert s_rec["prediction"] == raw
        assert s_rec["score"] == float(strip_label(raw, "nli", NLI_WORDS) == gold)
        fixed_preds.append(f_rec["prediction_index"])
        faithful_preds.append(s_rec["prediction_index"])
    # Multi-token label words: the full-sequence score and the study's sub-token race disagree somewhere.
    assert fixed_preds != faithful_preds
    assert fixed.scores.shape == faithful.scores.shape == (len(PROMPTS),)


def test_faithful_llmbar_leading_space_counts_wrong(tiny_lm):
    verbalizers = ("1", "2", " 1", " 2")
    eval_set = make_set("llmbar_natural", PROMPTS, ("1", "2"), [0] * len(PROMPTS), "faithful")
    eval_set = EvalSet(**{**eval_set.__dict__, "faithful_verbalizers": verbalizers})
    scored = score_eval_set(tiny_lm, eval_set, "faithful")
    for prompt, record in zip(PROMPTS, scored.records, strict=True):
        raw = study_next_word(tiny_lm, prompt, verbalizers)
        assert record["prediction"] == raw
        assert record["score"] == float(raw == "1")


def test_multiple_choice_acc_and_acc_norm(tiny_lm):
    options = (" a dog", " the quick brown fox jumps over the lazy dog", " no", " entailment neutral")
    prompts = [p.replace("### Inference: ", "Answer:") for p in PROMPTS]
    golds = [i % 4 for i in range(len(prompts))]
    scored = score_eval_set(tiny_lm, make_set("arc_easy", prompts, options, golds, "fixed"), "fixed",
                            batch_size=5)
    assert scored.metric == "acc" and set(scored.secondary) == {"acc_norm"}
    for prompt, gold, record, norm in zip(prompts, golds, scored.records, scored.secondary["acc_norm"], strict=True):
        lls = np.array([full_loglikelihood(tiny_lm, prompt, o) for o in options])
        assert record["score"] == float(np.argmax(lls) == gold)
        by_char = lls / np.array([len(o) for o in options])
        assert norm == float(np.argmax(by_char) == gold)
        assert record["prediction_norm"] == options[int(np.argmax(by_char))]


def test_rouge_l_is_rouge_score():
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    pairs = [("a cat sat on the mat", "the cat sat on a mat"), ("", "reference text"),
             ("Totally different words!", "nothing shared here"), ("Same Text.", "same text")]
    for prediction, reference in pairs:
        assert rouge_l(prediction, reference) == scorer.score(reference, prediction)["rougeL"].fmeasure


def test_generation_scored_with_rouge_score(tiny_lm):
    targets = ["a cat sat", "the man reads", "nobody", "an animal moves", "fox", "yes", "cat", "question"]
    eval_set = make_set("xsum", PROMPTS, (), [None] * len(PROMPTS), "fixed", targets)
    eval_set = EvalSet(**{**eval_set.__dict__, "stop_sequences": ("###",)})
    scored = score_eval_set(tiny_lm, eval_set, "fixed", max_new_tokens=8, batch_size=4)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for target, record, score in zip(targets, scored.records, scored.scores, strict=True):
        assert score == scorer.score(target, record["prediction"])["rougeL"].fmeasure
        assert "###" not in record["prediction"] and record["generated_tokens"] <= 8
