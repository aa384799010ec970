"""The driver's preflight: bad data, shots, checkpoints and storage fail before any Ray resource."""

from __future__ import annotations

import json
import pickle
import shutil
import time
from pathlib import Path

import pytest

from ptft.study.checkpoints import CheckpointResolutionError
from ptft.study.plan import build_plan
from ptft.study.preflight import (
    PreflightError,
    check_checkpoints,
    check_plan_data,
    check_storage,
    preflight,
)
from ptft.study.spec import parse_spec
from ptft.study.spec_errors import SpecError
from ptft.tasks import DataError
from ptft.tasks.loading import MINI_DIR

from .conftest import edited


@pytest.fixture
def local_raw(smoke_raw: dict, tmp_path: Path) -> dict:
    """The smoke spec with its checkpoints and storage in tmp_path (the checkpoint dirs exist)."""
    for name in ("step50", "step600"):
        (tmp_path / "ck" / name).mkdir(parents=True)
    return edited(smoke_raw, model__id=str(tmp_path / "ck" / "step600"),
                  model__checkpoints=[{"path": str(tmp_path / "ck" / "step50"), "step": 50},
                                      {"path": str(tmp_path / "ck" / "step600"), "step": 600}],
                  storage=str(tmp_path / "runs" / "smoke"))


def _plan(raw: dict, base_dir: str = "."):
    return build_plan(parse_spec(raw, base_dir=base_dir))


def _folder_source(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(MINI_DIR, data)
    return data


def test_the_smoke_plan_passes_fast_and_writes_nothing(local_raw: dict, tmp_path: Path) -> None:
    plan = _plan(local_raw)
    start = time.perf_counter()
    preflight(plan)
    assert time.perf_counter() - start < 10  # ~1.5 s cold, the imports included; ~0.2 s warm
    assert not (tmp_path / "runs").exists()  # the probe went to the nearest existing parent and was removed
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


@pytest.mark.parametrize("fault, line, expect", [
    ("empty", None, "empty split"),
    ("malformed", 57, "malformed JSON"),
    ("label7", 123, "label 7 is not one of (0, 1, 2)"),
    ("utf8", 3, "not UTF-8"),
    ("float", 200, "label 1.5 is not one of (0, 1, 2)"),
])
def test_bad_training_data_fails_in_the_preflight(local_raw: dict, tmp_path: Path, fault: str, line: int | None,
                                                  expect: str) -> None:
    data = _folder_source(tmp_path)
    path = data / "mnli" / "train.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    row = {"premise": "a b.", "hypothesis": "a.", "idx": 0}
    bad = {"malformed": b'{"premise": "a b.",', "label7": json.dumps({**row, "label": 7}).encode(),
           "utf8": b'{"premise": "caf\xe9", "hypothesis": "a.", "label": 0}',
           "float": json.dumps({**row, "label": 1.5}).encode()}
    if fault == "empty":
        path.write_bytes(b"")
    else:
        lines[line - 1] = bad[fault] + b"\n"
        path.write_bytes(b"".join(lines))
    plan = _plan(edited(local_raw, data__source=str(data)))
    with pytest.raises(DataError) as info:
        check_plan_data(plan)
    err = info.value
    assert (err.dataset, err.split, err.path, err.row) == ("mnli", "train", str(path), line)
    assert expect in str(err) and str(path) in str(err) and "fix:" in str(err)
    with pytest.raises(DataError):
        preflight(plan)


def test_bad_eval_data_and_its_shot_pool(local_raw: dict, tmp_path: Path) -> None:
    data = _folder_source(tmp_path)
    path = data / "rte" / "validation.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = b"not json\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(DataError) as info:
        check_plan_data(_plan(edited(local_raw, data__source=str(data))))
    assert (info.value.path, info.value.row) == (str(path), 2)


def test_more_shots_than_the_mini_pool_fails_in_the_preflight(local_raw: dict) -> None:
    plan = _plan(edited(local_raw, eval__shots=[2, 1000]))  # the hub pools hold 1000: the spec passes
    with pytest.raises(DataError) as info:
        check_plan_data(plan)
    assert "eval.shots[1] = 1000" in str(info.value) and "lower eval.shots[1] to at most" in str(info.value)


def test_eval_on_a_training_only_dataset_fails_at_parse(local_raw: dict) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(edited(local_raw, eval__datasets=["mnli"]))
    assert info.value.problems == ["eval.datasets[0]: dataset 'mnli' is training-only (no eval split); "
                                   "evaluate on mnli_matched, mnli_mismatched"]


def test_more_shots_than_the_hub_pool_fails_at_parse(local_raw: dict) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(edited(local_raw, eval__datasets=["llmbar_adversarial_manual"], eval__formats=["default"],
                          eval__shots=[4, 50]))
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("eval.shots[1]: 50 shots, but the few-shot pool of eval dataset "
                                             "'llmbar_adversarial_manual'")


def test_a_missing_local_checkpoint_fails_before_ray(local_raw: dict, tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "ck" / "step50")
    plan = _plan(local_raw)  # planning itself stays offline and path-free
    with pytest.raises(CheckpointResolutionError, match=r"model\.checkpoints\[0\]: checkpoint directory .* "
                                                        r"does not exist"):
        check_checkpoints(plan)
    with pytest.raises(CheckpointResolutionError):
        preflight(plan)


def test_a_relative_checkpoint_resolves_against_the_spec_folder(local_raw: dict, tmp_path: Path) -> None:
    raw = edited(local_raw, model__checkpoints=[{"path": "ck/step50", "step": 50}])
    check_checkpoints(_plan(raw, base_dir=str(tmp_path)))
    with pytest.raises(CheckpointResolutionError, match="does not exist"):
        check_checkpoints(_plan(raw, base_dir=str(tmp_path / "elsewhere")))


@pytest.mark.parametrize("root", ["/proc/x", "/sys/ptft"])
def test_an_unwritable_storage_root(root: str) -> None:
    with pytest.raises(PreflightError, match=rf"^storage: cannot write to '{root}'"):
        check_storage(root)


def test_storage_probe_leaves_nothing(tmp_path: Path) -> None:
    check_storage(str(tmp_path))
    check_storage(str(tmp_path / "not" / "yet"))
    check_storage("s3://bucket/prefix")  # object stores are not probed
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(PreflightError, match="is not a directory"):
        check_storage(str(tmp_path / "file" / "runs"))


def test_an_unwritable_storage_root_fails_the_preflight(local_raw: dict) -> None:
    with pytest.raises(PreflightError, match="storage"):
        preflight(_plan(edited(local_raw, storage="/proc/x")))


def test_a_missing_data_folder(local_raw: dict, tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match="data.source: folder"):
        check_plan_data(_plan(edited(local_raw, data__source=str(tmp_path / "nope"))))


def test_hub_sources_are_not_read(local_raw: dict, monkeypatch: pytest.MonkeyPatch,
                                  caplog: pytest.LogCaptureFixture) -> None:
    import datasets

    def no_download(*args, **kwargs):
        raise AssertionError("the preflight must not download")

    monkeypatch.setattr(datasets, "load_dataset", no_download)
    with caplog.at_level("INFO", logger="ptft.study.preflight"):
        check_plan_data(_plan(edited(local_raw, data__source="hub")))
    assert "not read before the run" in caplog.text


def test_spec_errors_pickle_intact() -> None:
    err = SpecError(["eval.shots[0]: too many", "storage: bad"], source="spec.yaml")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is SpecError and str(back) == str(err) and back.problems == err.problems
    storage_err = pickle.loads(pickle.dumps(PreflightError("storage: cannot write")))
    assert str(storage_err) == "storage: cannot write"


def test_one_folder_under_two_names_is_refused(tmp_path):
    from ptft.study.checkpoints import CheckpointResolutionError
    from ptft.study.plan import build_plan
    from ptft.study.preflight import check_checkpoints
    from ptft.study.spec import load_spec
    from tests.ray_jobs.conftest import write_spec

    (tmp_path / "ck" / "step100").mkdir(parents=True)
    (tmp_path / "ck" / "step400").mkdir(parents=True)
    spec = load_spec(str(write_spec(tmp_path, tmp_path / "ck", name="twice", n_checkpoints=2)))
    raw = spec.model_dump(exclude={"base_dir"})
    raw["model"]["checkpoints"] = [{"path": str(tmp_path / "ck" / "step100"), "step": 100, "name": "a"},
                                   {"path": str(tmp_path / "ck" / "step100") + "/", "step": 100, "name": "b"}]
    from ptft.study.spec import parse_spec

    with pytest.raises(CheckpointResolutionError, match="'b' is the folder .* already checkpoint 'a'"):
        check_checkpoints(build_plan(parse_spec(raw, base_dir=str(tmp_path))))


def test_offline_a_hub_revision_must_be_in_the_cache(paper_raw, monkeypatch, tmp_path):
    from ptft.study.checkpoints import CheckpointResolutionError
    from ptft.study.plan import build_plan
    from ptft.study.preflight import check_checkpoints
    from ptft.study.spec import parse_spec
    from tests.study.conftest import edited

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    raw = edited(paper_raw, model__checkpoints=["step1000-tokens4B"])
    with pytest.raises(CheckpointResolutionError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE=1"):
        check_checkpoints(build_plan(parse_spec(raw)))
