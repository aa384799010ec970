"""The registry's task facts the analysis reads: in-domain eval sets, hidden faithful labels, chance levels."""

from __future__ import annotations

import pytest

from ptft.tasks import UnknownTaskError, get_task, in_domain, list_tasks

# Every training set's own eval sets (what the analysis used to keep in evals/analysis/taskinfo.py:
# mnli/paws/socialiqa/xsum/tulu listed there, every other training set its own name only).
IN_DOMAIN = {
    "mnli": ("mnli_matched", "mnli_mismatched"),
    "paws": ("paws",),
    "socialiqa": ("socialiqa",),
    "xsum": ("xsum",),
    "tulu": (),  # instruction tuning: no eval set is in-domain
    "xlsum": ("xlsum",),
    "cnn": ("cnn",),
    "tweetqa": ("tweetqa",),
    "sciq": ("sciq",),  # question generation; the MC table's sciq_mc is off-task for it
    "rte": ("rte",),
    "qqp": ("qqp",),
    "stsb": ("stsb",),
}
TRAINING_SETS = sorted(name for name in list_tasks() if get_task(name).train_split is not None)
EVAL_ONLY = sorted(set(list_tasks()) - set(TRAINING_SETS))


def test_every_training_set_has_its_in_domain_evals_stated() -> None:
    assert sorted(IN_DOMAIN) == TRAINING_SETS


@pytest.mark.parametrize("train", sorted(IN_DOMAIN))
def test_in_domain_evals(train: str) -> None:
    assert in_domain(train) == IN_DOMAIN[train]
    assert get_task(train).in_domain_evals == IN_DOMAIN[train]


def test_mnli_is_evaluated_on_matched_and_mismatched_only() -> None:
    assert set(in_domain("mnli")) == {"mnli_matched", "mnli_mismatched"}
    assert "mnli" not in in_domain("mnli")  # training only: mnli has no eval split of its own
    assert "rte" not in in_domain("mnli") and "sciq_mc" not in in_domain("sciq")


def test_in_domain_evals_are_registered_eval_sets() -> None:
    for train in TRAINING_SETS:
        for name in in_domain(train):
            assert get_task(name).eval_split, f"{train}: in-domain {name} has no eval split"


@pytest.mark.parametrize("name", EVAL_ONLY)
def test_eval_only_datasets_are_not_training_sets(name: str) -> None:
    assert get_task(name).in_domain_evals == ()
    with pytest.raises(ValueError, match="eval-only"):
        in_domain(name)


def test_unknown_training_set_is_an_unknown_task() -> None:
    with pytest.raises(UnknownTaskError):
        in_domain("mlni")


def test_hidden_faithful_labels_are_qqp_and_stsb() -> None:
    assert {n for n in list_tasks() if get_task(n).faithful_hidden_labels} == {"qqp", "stsb"}


@pytest.mark.parametrize(("name", "level"), [
    ("mnli_matched", 1 / 3), ("mnli_mismatched", 1 / 3), ("gpt3nli", 1 / 3), ("rte", 0.5), ("paws", 0.5),
    ("qqp", 0.5), ("stsb", 0.5), ("boolq", 0.5), ("llmbar_natural", 0.5), ("arc_easy", 0.25),
    ("sciq_mc", 0.25), ("hellaswag", 0.25), ("xsum", None), ("socialiqa", None), ("tulu", None),
])
def test_chance_levels(name: str, level: float | None) -> None:
    assert get_task(name).chance_level == (None if level is None else pytest.approx(level))
