"""The registry: names, entry invariants, unknown-name errors, label mappings both ways, versions."""

from __future__ import annotations

import pytest

from ptft.tasks import FORMATS, MODES, TASK_TYPES, UnknownTaskError, get_task, list_tasks, template_version
from ptft.tasks.formats.templates import TEMPLATES
from ptft.tasks.types import FAMILIES

STUDY_NAMES = [
    "xsum", "xlsum", "cnn", "socialiqa", "tweetqa", "sciq", "mnli", "mnli_matched", "mnli_mismatched",
    "rte", "gpt3nli", "paws", "qqp", "stsb", "arc_easy", "arc_challenge", "openbookqa", "hellaswag",
    "boolq", "sciq_mc", "llmbar_natural", "llmbar_adversarial_neighbor", "llmbar_adversarial_manual", "tulu",
]


def test_every_study_dataset_is_registered() -> None:
    assert sorted(list_tasks()) == sorted(STUDY_NAMES)


@pytest.mark.parametrize("name", STUDY_NAMES)
def test_entry_is_consistent(name: str) -> None:
    spec = get_task(name)
    assert spec.name == name and spec.hub_id
    assert spec.task_type in TASK_TYPES and spec.family in FAMILIES
    assert set(spec.faithful_formats) <= set(spec.formats) <= set(FORMATS)
    assert spec.metric in ("accuracy", "rougeL", "acc", "none")
    assert spec.eval_split == {} or set(spec.eval_split) == set(MODES)
    assert spec.columns and spec.tokens_per_example > 0
    if spec.task_type in ("classification", "multiple_choice"):
        assert spec.chance_level is not None and 0 < spec.chance_level < 1
    else:
        assert spec.chance_level is None
    if spec.task_type == "classification":
        assert spec.label_words and "label" in spec.columns
    if spec.train_split is not None:
        assert (spec.train_subset_size or spec.train_subset_fraction) and spec.subset_seed == 42
    for mode in MODES:
        for fmt in FORMATS:
            if spec.supports(fmt, mode):
                assert fmt in TEMPLATES[spec.template][mode]
                assert len(template_version(name, fmt, mode)) == 16
    if spec.eval_split:
        assert spec.eval_size == spec.split_sizes[spec.eval_split["faithful"]]


def test_study_subset_rules() -> None:
    for name in ("xsum", "socialiqa", "mnli", "paws"):
        assert get_task(name).train_subset_size == 6000
    assert get_task("tulu").train_subset_fraction == 0.05


def test_unknown_task_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownTaskError) as info:
        get_task("mlni")
    known = ", ".join(sorted(list_tasks()))
    assert str(info.value) == f"unknown dataset 'mlni' (did you mean 'mnli'?); known: {known}"
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert str(UnknownTaskError("zzzz", list_tasks())) == f"unknown dataset 'zzzz'; known: {known}"


def test_bad_format_and_mode_are_named() -> None:
    with pytest.raises(ValueError, match="did you mean 'instruct'"):
        template_version("mnli", "instuct", "fixed")
    with pytest.raises(ValueError, match="unknown mode"):
        template_version("mnli", "default", "faithfull")
    with pytest.raises(ValueError, match="use mode='fixed'"):
        template_version("rte", "io", "faithful")  # the study has no IO file for RTE
    assert template_version("rte", "io", "fixed")


CLASSIFICATION = [n for n in STUDY_NAMES if get_task(n).task_type == "classification"]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_label_mapping_round_trips(name: str) -> None:
    spec = get_task(name)
    assert spec.label_words is not None
    for index, word in enumerate(spec.label_words):
        assert spec.label_index(word) == index
        assert spec.label_index(" " + word) == index
        if spec.label_threshold is None:
            assert spec.label_word(spec.label_value(word)) == word
    with pytest.raises(ValueError):
        spec.label_index("maybe")


def test_label_words_match_the_study() -> None:
    assert get_task("mnli").label_word(0) == "entailment"
    assert get_task("mnli").label_word(1) == "neutral"
    assert get_task("mnli").label_word(2) == "contradiction"
    assert get_task("rte").label_word(1) == "neutral"  # not_entailment, as the study verbalised it
    assert get_task("paws").label_word(1) == "yes" and get_task("paws").label_word(0) == "no"
    assert get_task("llmbar_natural").label_word(2) == "2"
    stsb = get_task("stsb")
    assert stsb.label_word(3.6) == "yes" and stsb.label_word(3.5) == "no"


def test_hidden_labels_fail_in_fixed_mode_and_become_the_study_default_in_faithful() -> None:
    for name, raw, faithful in [("qqp", -1, "no"), ("stsb", -1.0, "no"), ("mnli", -1, "contradiction"),
                                ("rte", -1, "entailment"), ("paws", 5, "no")]:
        spec = get_task(name)
        with pytest.raises(ValueError):
            spec.label_word(raw, "fixed")
        assert spec.label_word(raw, "faithful") == faithful
    with pytest.raises(ValueError):
        get_task("llmbar_natural").label_word(3, "faithful")


def test_template_version_loads_no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("template_version must not load data")

    monkeypatch.setattr(datasets, "load_dataset", no_data)
    versions = {template_version("paws", fmt, mode) for fmt in FORMATS for mode in MODES}
    assert len(versions) == 6  # every (format, mode) differs
    assert template_version("paws", "io", "fixed") == template_version("paws", "io", "fixed")
    # same template, different columns: qqp and paws render differently
    assert template_version("paws", "default", "fixed") != template_version("qqp", "default", "fixed")
