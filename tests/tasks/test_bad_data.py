"""Bad local data fails naming file, line (1-based, in the file), field and value as written; errors pickle."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from ptft.tasks import DataError, UnknownTaskError, eval_set, get_task, load_split, training_set
from ptft.tasks.loading import MINI_DIR, read_jsonl
from ptft.tasks.sets import check_shots


def _mini_copy(tmp_path: Path, task: str, split: str) -> Path:
    """A folder source holding the mini file of (task, split); returns the file's path."""
    path = tmp_path / task / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(MINI_DIR / task / f"{split}.jsonl", path)
    return path


def _set_line(path: Path, line: int, text: bytes) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[line - 1] = text + b"\n"
    path.write_bytes(b"".join(lines))


def _mnli_row(**edits) -> bytes:
    return json.dumps({"premise": "a b.", "hypothesis": "a.", "label": 0, "idx": 0, **edits}).encode()


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = _mini_copy(tmp_path, "mnli", "train")
    _set_line(path, 57, b'{"premise": "a b.", "hypothesis": ')
    with pytest.raises(DataError) as info:
        training_set("mnli", "default", source=str(tmp_path))
    err = info.value
    assert (err.path, err.row, err.line, err.split) == (str(path), 57, 57, "train")
    assert "malformed JSON" in str(err) and f"{path}:57:" in str(err) and "fix:" in str(err)


def test_non_utf8_bytes_name_file_and_line(tmp_path: Path) -> None:
    path = _mini_copy(tmp_path, "mnli", "train")
    _set_line(path, 3, b'{"premise": "caf\xe9", "hypothesis": "a.", "label": 0, "idx": 2}')
    with pytest.raises(DataError) as info:
        load_split("mnli", "train", source=str(tmp_path))
    assert (info.value.path, info.value.row) == (str(path), 3)
    assert "not UTF-8" in str(info.value) and "0xe9" in str(info.value)


def test_a_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = _mini_copy(tmp_path, "mnli", "train")
    _set_line(path, 10, b"[1, 2]")
    with pytest.raises(DataError, match="expected a JSON object, got list") as info:
        load_split("mnli", "train", source=str(tmp_path))
    assert info.value.row == 10


def test_empty_and_blank_only_train_files(tmp_path: Path) -> None:
    path = _mini_copy(tmp_path, "mnli", "train")
    for text in (b"", b"\n  \n\n"):
        path.write_bytes(text)
        with pytest.raises(DataError, match="empty split") as info:
            training_set("mnli", "default", source=str(tmp_path))
        assert info.value.path == str(path) and "fix:" in str(info.value)


def test_a_float_label_is_reported_at_its_line_as_written(tmp_path: Path) -> None:
    # The JSON reader casts the whole label column to float (1.5 among ints): every label reads 0.0, 1.0..
    # and the first row rendered is a shuffled one. The error must name line 200 and the value 1.5.
    path = _mini_copy(tmp_path, "mnli", "train")
    _set_line(path, 200, _mnli_row(label=1.5, idx=199))
    for on_error in ("raise", "skip"):  # the cast breaks every row: skipping them would drop the whole set
        with pytest.raises(DataError) as info:
            training_set("mnli", "default", source=str(tmp_path), on_error=on_error)
        err = info.value
        assert (err.path, err.row, err.field) == (str(path), 200, "label")
        assert "label 1.5 is not one of (0, 1, 2)" in str(err)
        assert "0.0" not in str(err)


def test_a_label_of_7_is_reported_at_its_line(tmp_path: Path) -> None:
    path = _mini_copy(tmp_path, "mnli", "train")
    _set_line(path, 123, _mnli_row(label=7, idx=122))
    with pytest.raises(DataError) as info:
        training_set("mnli", "instruct", source=str(tmp_path))
    assert (info.value.row, info.value.field, info.value.path) == (123, "label", str(path))
    assert "label 7 is not one of (0, 1, 2)" in str(info.value)
    kept = training_set("mnli", "instruct", source=str(tmp_path), on_error="skip")
    assert kept.counts["skipped_bad_rows"] == 1


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "mnli_matched" / "validation.jsonl"
    path.parent.mkdir()
    path.write_bytes(b"\n".join([_mnli_row(), b"", b"   ", _mnli_row(label=2), _mnli_row(label=9)]) + b"\n")
    assert read_jsonl(str(path)).lines == (1, 4, 5)
    with pytest.raises(DataError) as info:
        eval_set("mnli_matched", "default", "fixed", shots=0, source=str(tmp_path))
    assert info.value.row == 5 and "label 9" in str(info.value)


def test_good_files_still_load_through_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from ptft.tasks.loading import _load_json

    calls = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or real(*a, **k))
    _load_json.cache_clear()
    _mini_copy(tmp_path, "mnli", "train")
    assert training_set("mnli", "default", source=str(tmp_path)).checksum == \
        training_set("mnli", "default", source="mini").checksum
    assert calls and calls[0][0] == "json"


def test_more_shots_than_the_pool_holds(tmp_path: Path) -> None:
    pool_rows = len(read_jsonl(str(MINI_DIR / "rte" / "train.jsonl")).rows)
    with pytest.raises(DataError) as info:
        check_shots("rte", "fixed", 1000, source="mini", name="eval.shots[0]")
    assert f"eval.shots[0] = 1000, but the few-shot pool has only {pool_rows} rows" in str(info.value)
    assert info.value.path == str(MINI_DIR / "rte" / "train.jsonl")
    check_shots("rte", "fixed", pool_rows, source="mini")
    check_shots("rte", "fixed", 1000, source="hub")  # the hub's train split has 2,490 rows
    with pytest.raises(DataError, match="lower shots to at most"):
        eval_set("rte", "default", "fixed", shots=1000, source="mini", limit=2)
    assert isinstance(info.value, ValueError)


def test_errors_pickle_intact() -> None:
    errors = [
        DataError("mnli", "train", 200, "label", "label 1.5 is not one of (0, 1, 2)", "/d/mnli/train.jsonl",
                  "correct or remove line 200"),
        DataError("mnli", None, None, None, "empty split"),
        UnknownTaskError("mlni", ["mnli"]),
    ]
    for err in errors:
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err) and back.args == err.args
    back = pickle.loads(pickle.dumps(errors[0]))
    assert (back.dataset, back.split, back.row, back.field, back.path) == ("mnli", "train", 200, "label",
                                                                           "/d/mnli/train.jsonl")
    assert "did you mean 'mnli'" in str(pickle.loads(pickle.dumps(errors[2])))
    assert get_task("mnli").name == "mnli"


def _raise_data_error() -> None:
    raise DataError("mnli", "train", 200, "label", "label 1.5 is not one of (0, 1, 2)", "/d/train.jsonl")


@pytest.mark.slow  # starting a local Ray takes ~20 s here
def test_data_error_crosses_a_ray_task() -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with pytest.raises(DataError) as info:
            ray.get(ray.remote(_raise_data_error).remote())
        assert (info.value.row, info.value.field, info.value.path) == (200, "label", "/d/train.jsonl")
        assert "label 1.5" in str(info.value)
    finally:
        ray.shutdown()
