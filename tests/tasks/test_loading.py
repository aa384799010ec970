"""Loading through `datasets.load_dataset` (hub, minis, folders) and every bad-data error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ptft.tasks import DataError, eval_set, get_task, list_tasks, load_rows, load_split, training_set
from ptft.tasks.loading import _load_json, subset_indices


def _splits(name: str) -> set[tuple[str, str]]:
    """Every (task, split) the registry reads for `name`, its few-shot source included."""
    spec = get_task(name)
    pairs = {(name, s) for s in (spec.train_split, *spec.eval_split.values()) if s}
    if spec.fewshot_split:
        pairs.add((spec.fewshot_task or name, spec.fewshot_split))
    return pairs


def test_every_entry_loads_its_mini_through_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls: list[tuple[Any, ...]] = []
    real = datasets.load_dataset

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    _load_json.cache_clear()
    for name in list_tasks():
        for task, split in _splits(name):
            dataset = load_split(task, split, source="mini")
            assert len(dataset) > 0
    assert calls and all(args[0] == "json" and kwargs["split"] == "train" for args, kwargs in calls)
    assert all(str(kwargs["data_files"]).endswith(".jsonl") for _, kwargs in calls)


def test_hub_source_calls_load_dataset_with_id_config_and_split(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    seen: list[tuple[Any, ...]] = []
    rows = load_rows("mnli_matched", "validation", source="mini")

    def fake(path: str, name: str | None = None, split: str | None = None) -> Any:
        seen.append((path, name, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake)
    evals = eval_set("mnli_matched", "default", "fixed", shots=0, source="hub", limit=3)
    assert seen == [("nyu-mll/glue", "mnli_matched", "validation")]
    assert len(evals.examples) == 3


def _write(folder: Path, task: str, split: str, rows: list[dict]) -> None:
    path = folder / task / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


NLI_ROWS = [{"premise": "a b.", "hypothesis": "a.", "label": 0, "idx": 0},
            {"premise": "c d.", "hypothesis": "not c.", "label": 2, "idx": 1}]


def test_folder_source_reads_task_split_jsonl(tmp_path: Path) -> None:
    _write(tmp_path, "mnli_matched", "validation", NLI_ROWS)
    evals = eval_set("mnli_matched", "io", "faithful", shots=1, source=str(tmp_path))
    assert [e.target for e in evals.examples] == ["entailment", "contradiction"]
    assert evals.examples[1].context == "a b. a.entailment\nc d. not c."


def test_missing_file_and_empty_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no file"):
        load_split("mnli_matched", "validation", source=str(tmp_path))
    (tmp_path / "mnli_matched").mkdir()
    (tmp_path / "mnli_matched" / "validation.jsonl").write_text("")
    with pytest.raises(DataError, match="empty split") as info:
        load_split("mnli_matched", "validation", source=str(tmp_path))
    assert (info.value.dataset, info.value.split) == ("mnli_matched", "validation")


def test_missing_column(tmp_path: Path) -> None:
    _write(tmp_path, "mnli_matched", "validation", [{"premise": "a", "label": 0, "idx": 0}])
    with pytest.raises(DataError) as info:
        eval_set("mnli_matched", "default", "fixed", shots=0, source=str(tmp_path))
    assert info.value.field == "hypothesis" and info.value.split == "validation"
    assert isinstance(info.value, ValueError)
    assert "dataset 'mnli_matched', split 'validation', field 'hypothesis': missing column" in str(info.value)


def test_label_outside_the_label_set(tmp_path: Path) -> None:
    _write(tmp_path, "mnli_matched", "validation", [*NLI_ROWS, {**NLI_ROWS[0], "label": 7}])
    with pytest.raises(DataError) as info:
        eval_set("mnli_matched", "default", "fixed", shots=0, source=str(tmp_path))
    assert (info.value.row, info.value.field) == (3, "label")  # the 1-based line in the file
    assert info.value.path == str(tmp_path / "mnli_matched" / "validation.jsonl")
    skipped = eval_set("mnli_matched", "default", "fixed", shots=0, source=str(tmp_path), on_error="skip")
    assert skipped.counts["skipped_bad_rows"] == 1 and skipped.counts["scored"] == 2
    # faithful mode maps like the study's code: anything but 0/1 is "contradiction"
    faithful = eval_set("mnli_matched", "default", "faithful", shots=0, source=str(tmp_path))
    assert faithful.examples[2].target == "contradiction"


def test_empty_target(tmp_path: Path) -> None:
    _write(tmp_path, "xsum", "train", [{"document": "a b.", "summary": "a.", "id": "1"},
                                       {"document": "c d.", "summary": "  ", "id": "2"}])
    with pytest.raises(DataError, match="empty target") as info:
        training_set("xsum", "default", source=str(tmp_path))
    assert (info.value.dataset, info.value.split, info.value.field) == ("xsum", "train", "summary")
    assert info.value.row == 2  # the line of the empty summary
    kept = training_set("xsum", "default", source=str(tmp_path), on_error="skip")
    assert kept.counts["skipped_bad_rows"] == 1 and len(kept.examples) == 1


def test_empty_assistant_turn_and_bad_role(tmp_path: Path) -> None:
    _write(tmp_path, "tulu", "train", [
        {"dataset": "d", "id": "0", "messages": [{"role": "user", "content": "hi"},
                                                 {"role": "assistant", "content": ""}]},
    ] * 40)
    with pytest.raises(DataError, match="empty target") as info:
        training_set("tulu", "default", source=str(tmp_path))
    assert info.value.field == "messages[1].content"
    _write(tmp_path, "tulu", "train", [
        {"dataset": "d", "id": "0", "messages": [{"role": "robot", "content": "hi"}]}] * 40)
    with pytest.raises(DataError, match="unknown role"):
        training_set("tulu", "default", source=str(tmp_path))


def test_bad_multiple_choice_answer(tmp_path: Path) -> None:
    row = {"id": "x", "question": "q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"}
    _write(tmp_path, "arc_easy", "validation", [row])
    _write(tmp_path, "arc_easy", "train", [{**row, "answerKey": "A"}])
    with pytest.raises(DataError) as info:
        eval_set("arc_easy", "default", "fixed", shots=1, source=str(tmp_path))
    assert info.value.field == "answerKey" and info.value.row == 1


def test_list_column_needs_an_item(tmp_path: Path) -> None:
    _write(tmp_path, "tweetqa", "validation", [{"Question": "q?", "Answer": [], "Tweet": "t", "qid": "1"}])
    with pytest.raises(DataError) as info:
        eval_set("tweetqa", "default", "fixed", shots=0, source=str(tmp_path))
    assert info.value.field == "Answer[0]"


def test_training_subset_is_the_study_shuffle() -> None:
    import datasets

    spec = get_task("mnli")
    ids = list(range(10000))
    expected = datasets.Dataset.from_dict({"i": ids}).shuffle(seed=42).select(range(6000))["i"]
    assert subset_indices(spec, 10000) == expected
    assert len(subset_indices(get_task("tulu"), 1200)) == 60  # 5%
    train = training_set("mnli", "default", source="mini")
    assert train.counts["subset"] == 400 and train.counts["subset_short"] == 5600
    assert train.examples[0].example_id == f"mnli/train/{subset_indices(spec, 400)[0]}"
