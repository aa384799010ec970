"""A spec's `tasks:` section: declared tasks are registered before the datasets are validated, plan and
preflight like built-in ones, and their template text is part of every id that reads the template version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from ptft import tasks
from ptft.study.plan import build_plan
from ptft.study.preflight import preflight
from ptft.study.spec import SpecError, load_spec, parse_spec
from tests.study.conftest import REPO
from tests.tasks.conftest import isolated_registry  # noqa: F401  (the fixture, used below)

pytestmark = pytest.mark.usefixtures("isolated_registry")

EXAMPLES = os.path.join(REPO, "configs", "tasks", "examples.yaml")


def _inline(template: str = "Story: {document}\nSummary: ") -> dict:
    return {"name": "my_summaries", "type": "generation", "source": {"folder": "data/summaries"},
            "splits": {"train": "train", "eval": "test"}, "columns": {"document": "document", "target": "summary"},
            "templates": {"default": template}, "metric": "rougeL", "single_line_target": True}


def _spec(folder: Path, task_list: list, datasets=("mini_summaries",), **top) -> Path:
    """A small spec training and evaluating `datasets`, with the given `tasks:` list."""
    checkpoint = folder / "ck" / "step100"
    checkpoint.mkdir(parents=True, exist_ok=True)
    raw = {"name": "declared", "tasks": task_list,
           "model": {"id": str(checkpoint), "name": "tiny", "checkpoints": [{"path": str(checkpoint), "step": 100}]},
           "data": {"source": "mini"},
           "train": {"datasets": list(datasets), "formats": ["default"], "learning_rates": [1e-3], "max_length": 128,
                     "val_size": 8},
           "eval": {"datasets": list(datasets), "formats": ["default"], "shots": [1], "limit": 4},
           "storage": str(folder / "storage"), **top}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _summaries(folder: Path) -> None:
    """The shipped xsum mini as a user's own folder of <split>.jsonl."""
    data = folder / "data" / "summaries"
    data.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        source = Path(REPO, "ptft", "tasks", "mini", "data", "xsum", f"{split}.jsonl")
        (data / f"{split}.jsonl").write_bytes(source.read_bytes())


def test_a_task_file_registers_its_tasks_before_the_datasets_are_checked(tmp_path):
    assert "mini_summaries" not in tasks.list_tasks()
    with pytest.raises(SpecError) as info:  # without the section the name is unknown
        load_spec(str(_spec(tmp_path, [])))
    assert info.value.problems[0].startswith("train.datasets[0]: unknown dataset 'mini_summaries'")

    spec = load_spec(str(_spec(tmp_path, [os.path.relpath(EXAMPLES, tmp_path)])))  # relative to the spec
    assert [d.name for d in spec.tasks] == ["mini_summaries", "trivia_qa_em"]
    assert "mini_summaries" in tasks.list_tasks()
    plan = build_plan(spec)
    assert {c.train_dataset for c in plan.cells} == {"mini_summaries"}
    assert {j.job.dataset for j in plan.eval_jobs} == {"mini_summaries"}
    preflight(plan, about_to_run=False)  # its folder loads and renders through the workers' code
    # read again in the same process: the same declarations register idempotently
    assert build_plan(load_spec(str(_spec(tmp_path, [EXAMPLES])))).cells[0].cell_id == plan.cells[0].cell_id


def test_an_inline_declaration_reads_its_folder_from_the_spec_and_its_template_is_in_the_ids(tmp_path):
    _summaries(tmp_path)
    first = build_plan(load_spec(str(_spec(tmp_path, [_inline()], datasets=("my_summaries",)))))
    preflight(first, about_to_run=False)
    assert first.spec.tasks[0].source.folder == str(tmp_path / "data" / "summaries")

    # The same name with another template, as a new process would read it (one process refuses two
    # different declarations of a name: the next test): forget the first one.
    from ptft.tasks import declared
    from ptft.tasks.registry import REGISTRY

    declared._DECLARED.pop("my_summaries")
    REGISTRY.pop("my_summaries")
    changed = build_plan(load_spec(str(_spec(tmp_path, [_inline("Text: {document}\nSummary: ")],
                                             datasets=("my_summaries",)))))
    assert {c.cell_id for c in changed.cells}.isdisjoint(c.cell_id for c in first.cells)
    assert {j.job_id for j in changed.eval_jobs}.isdisjoint(j.job_id for j in first.eval_jobs)
    assert [t.trial_id for t in changed.trials] != [t.trial_id for t in first.trials]


def test_declaration_errors_name_the_spec_the_entry_and_the_field(tmp_path):
    _summaries(tmp_path)
    path = _spec(tmp_path, [_inline("Story: {documnt}\nSummary: ")], datasets=("my_summaries",))
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    (line,) = info.value.problems
    assert line.startswith(f"{path}: tasks[0] (task 'my_summaries'): templates.default: placeholder {{documnt}}")
    assert "did you mean 'document'" in line
    with pytest.raises(SpecError) as info:
        load_spec(str(_spec(tmp_path, ["no/such/tasks.yaml"])))
    assert "tasks[0]: no task file" in info.value.problems[0]


def test_a_name_declared_differently_in_this_process_is_refused(tmp_path):
    _summaries(tmp_path)
    load_spec(str(_spec(tmp_path, [_inline()], datasets=("my_summaries",))))
    with pytest.raises(SpecError) as info:
        load_spec(str(_spec(tmp_path, [_inline("Other: {document}\nSummary: ")], datasets=("my_summaries",))))
    (line,) = info.value.problems
    assert line.startswith("tasks: task 'my_summaries' is declared twice, differently") and "templates" in line


def test_a_dumped_spec_reads_back_with_its_declarations(tmp_path):
    spec = load_spec(str(_spec(tmp_path, [EXAMPLES])))
    again = parse_spec(spec.model_dump(exclude={"base_dir"}), base_dir=spec.base_dir)
    assert again.tasks == spec.tasks
    assert [c.cell_id for c in build_plan(again).cells] == [c.cell_id for c in build_plan(spec).cells]
