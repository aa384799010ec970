"""`ptft tasks` and `ptft tasks show`: the table of every task, and one example as the model sees it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ptft.cli.main import main
from ptft.cli.tasks import shown

REPO = Path(__file__).resolve().parents[2]
RTE_FILE = REPO / "configs" / "tasks" / "rte_declared.yaml"
MINI = REPO / "ptft" / "tasks" / "mini" / "data"

pytestmark = pytest.mark.usefixtures("isolated_registry")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["tasks", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_table_lists_builtin_and_declared_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "--file", str(RTE_FILE))
    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line and line.split()[0] != "rows:"}
    assert rows["rte"][1:4] == ["classification", "default,instruct,io", "fixed"]
    assert "faithful(default,instruct)" in rows["rte"] and "eval=validation:100" in rows["rte"]
    assert "faithful-eval=train:100" in rows["rte"]  # the study scored RTE's train split
    assert "shots=mnli/train:400" in rows["mnli_matched"]
    declared = rows["rte_declared"]
    assert declared[1:5] == ["classification", "default,instruct,io", "fixed", "accuracy"]
    assert "eval=validation:hub" in declared and declared[-2:] == [str(RTE_FILE), "tasks[0]"]


def test_the_json_table_and_a_spec_with_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(MINI / "xsum", tmp_path / "mine")
    inline = {"name": "summaries", "type": "generation", "source": {"folder": "mine"},
              "splits": {"train": "train", "eval": "test"}, "columns": {"document": "document", "target": "summary"},
              "templates": {"io": "{document}"}}
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "tasks": [str(RTE_FILE), inline]}))
    status, out, _ = _run(capsys, "--spec", str(spec), "--json")
    assert status == 0
    by_name = {row["name"]: row for row in json.loads(out)}
    assert by_name["summaries"]["splits"]["train"] == {"split": "train", "rows": "400"}  # counted in its folder
    assert by_name["summaries"]["from"] == f"{spec} tasks[1]" and by_name["rte_declared"]["modes"] == ["fixed"]
    assert by_name["rte"]["hub_sizes"]["validation"] == 277


def test_show_prints_the_declared_task_as_the_builtin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(MINI / "rte", tmp_path / "rte_declared")
    args = ("--format", "instruct", "--shots", "2", "--index", "3")
    _, builtin, _ = _run(capsys, "show", "rte", *args)
    status, declared, _ = _run(capsys, "show", "rte_declared", "--file", str(RTE_FILE), "--source", str(tmp_path),
                               *args)
    assert status == 0
    # everything below the header (name, source, template version) is the same text
    assert builtin.split("\n", 2)[2] == declared.split("\n", 2)[2]
    assert "context (" in declared and "  [1] 'neutral'" in declared and "target: " in declared
    assert " The relation is ⟧" in declared  # the trailing space before the end marker


def test_show_a_training_example(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "show", "xsum", "--split", "train", "--format", "default")
    assert status == 0
    assert "segment 1 (no loss):" in out and "segment 2 (loss, then eos):" in out
    assert "\n ### Summary:⟧\n" in out.replace("  │", "")  # the prompt's final space moved to the trained side


def test_show_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, "show", "rtee")
    assert status == 2 and "unknown dataset 'rtee' (did you mean 'rte'?)" in err
    status, _, err = _run(capsys, "show", "rte", "--split", "train", "--shots", "2")
    assert status == 2 and "--shots" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"tasks": [{**yaml.safe_load(RTE_FILE.read_text())["tasks"][0], "metric": "bleu"}]}))
    status, _, err = _run(capsys, "--file", str(bad))
    assert status == 2 and f"{bad}: tasks[0] (task 'rte_declared'): metric: unknown metric 'bleu'" in err
    status, _, err = _run(capsys, "show", "rte", "--source", str(tmp_path))  # no rte/ in that folder
    assert status == 1 and "validation.jsonl" in err


def test_shown_marks_every_line_and_the_end() -> None:
    assert shown("a \nb\n") == "  │a \n  │b\n  │⟧"
