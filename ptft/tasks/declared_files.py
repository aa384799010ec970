"""Task declarations read from YAML: a task file, or the spec's `tasks:` list of files and inline ones.

Every problem is one line naming the file, the declaration (`tasks[1]`, task 'name') and the field
(`templates.default`), raised together as one `TaskDeclarationError` before anything runs. A folder
source is also checked against its data: each split's file exists and its first row has every mapped
column (the rows' own problems are named, with their line, when they are rendered). docs/tasks.md.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ptft.core.yaml_files import YamlError, read_yaml
from ptft.tasks.declared import TaskDeclaration, TaskSource, TaskSplits, conflict
from ptft.tasks.formats.render import column_root


class TaskDeclarationError(ValueError):
    """Declarations that cannot run: `problems` holds one `field: problem` line each.

    `path` is the YAML file, `where` the declaration's place in it (`tasks[0]`), `task` its name when it
    has one. The message puts all three before every problem. Pickles intact.
    """

    def __init__(self, problems: Sequence[str], path: str | None = None, where: str | None = None,
                 task: str | None = None) -> None:
        self.problems, self.path, self.where, self.task = list(problems), path, where, task
        head = [part for part in (path, where) if part]
        prefix = ": ".join(head)
        if task:
            prefix += f" (task {task!r})" if prefix else f"task {task!r}"
        super().__init__("\n".join(f"{prefix}: {p}" if prefix else p for p in self.problems))

    def __reduce__(self):  # the default would call __init__(message) alone
        return (type(self), (self.problems, self.path, self.where, self.task))


# --- pydantic's errors, one line per field --------------------------------------------------------


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue  # a union member's name (tuple[int, ...]): not a YAML field
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    models: dict[str, type[BaseModel]] = {"source": TaskSource, "splits": TaskSplits}
    if not loc:
        return TaskDeclaration
    return models.get(str(loc[0])) if len(loc) == 1 else None


def explain(err: ValidationError) -> list[str]:
    """`field: problem` for each of pydantic's errors; a check across fields already names its field."""
    problems = []
    for e in err.errors():
        loc = tuple(e["loc"])
        where = _location(loc)
        if e["type"] == "extra_forbidden":
            owner = _model_at(loc[:-1])
            allowed = [n for n in (owner.model_fields if owner else ()) if n != "declared_in"]
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{where}: unknown key{hint}; allowed keys: {', '.join(allowed)}")
            continue
        if e["type"] == "missing":
            problems.append(f"{where}: required field is missing")
            continue
        message = e["msg"].removeprefix("Value error, ")
        bad = e.get("input")
        for line in message.splitlines():
            field, sep, rest = line.partition(": ")
            if e["type"] == "value_error" and sep and " " not in field and not field.startswith("'"):
                problems.append(f"{where}.{line}" if where else line)  # "templates.io: ..." from a model check
            else:
                shown = "" if isinstance(bad, (dict, list)) or e["type"] == "value_error" else f" (got {bad!r})"
                problems.append(f"{where}: {line}{shown}" if where else line)
    return list(dict.fromkeys(problems))


# --- reading declarations -------------------------------------------------------------------------


def parse_declaration(raw: Any, base_dir: str | os.PathLike[str], path: str | None = None,
                      where: str | None = None) -> TaskDeclaration:
    """One declaration from its YAML mapping; a folder source is resolved against `base_dir` and checked
    against its files. TaskDeclarationError names `path`, `where` and each bad field."""
    name = raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else None
    if not isinstance(raw, dict):
        raise TaskDeclarationError([f"expected a task declaration (a mapping), got {type(raw).__name__}"],
                                   path, where)
    if "declared_in" in raw:
        raise TaskDeclarationError(["declared_in: unknown key (the loader records where a task is declared)"],
                                   path, where, name)
    origin = " ".join(part for part in (path, where) if part)
    try:
        declaration = TaskDeclaration.model_validate({**raw, "declared_in": origin},
                                                     context={"base_dir": str(base_dir)})
    except ValidationError as err:
        raise TaskDeclarationError(explain(err), path, where, name) from None
    problems = check_folder_data(declaration)
    if problems:
        raise TaskDeclarationError(problems, path, where, name)
    return declaration


def _first_row(file: Path) -> dict[str, Any] | str:
    """The first non-blank line of a jsonl file as an object, or why it cannot be read."""
    with open(file, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark, as the loaders allow
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                return f"{file}:{number}: line {number} is not UTF-8 JSON ({err})"
            return row if isinstance(row, dict) else f"{file}:{number}: expected a JSON object"
    return f"{file} has no rows"


def check_folder_data(declaration: TaskDeclaration) -> list[str]:
    """For a folder source: each split's file exists and its first row has every mapped column."""
    folder = declaration.source.folder
    if folder is None:
        return []  # a hub dataset is checked when it loads (planning stays offline)
    problems: list[str] = []
    checked: set[str] = set()
    for key, split in declaration.splits.names().items():
        if split in checked:
            continue
        checked.add(split)
        file = Path(folder) / f"{split}.jsonl"
        if not file.is_file():
            problems.append(f"splits.{key}: no file {file} (a folder source reads <folder>/<split>.jsonl)")
            continue
        row = _first_row(file)
        if isinstance(row, str):
            problems.append(f"splits.{key}: {row}")
            continue
        for field, column in declaration.columns.items():
            if column_root(column) not in row:
                problems.append(f"columns.{field}: column {column_root(column)!r} is not in the first row of "
                                f"{file} (its columns: {', '.join(sorted(row))})")
    return list(dict.fromkeys(problems))


def _items(raw: Any, path: str) -> list[tuple[str | None, Any]]:
    """A task file's declarations with their places: `tasks: [...]`, a list, or one mapping."""
    if isinstance(raw, dict) and "tasks" in raw:
        extra = sorted(set(raw) - {"tasks"})
        if extra:
            raise TaskDeclarationError([f"{extra[0]}: unknown key; a task file holds `tasks:` only"], path)
        raw = raw["tasks"]
        if not isinstance(raw, list):
            raise TaskDeclarationError(["tasks: expected a list of task declarations"], path)
        return [(f"tasks[{i}]", item) for i, item in enumerate(raw)]
    if isinstance(raw, list):
        return [(f"[{i}]", item) for i, item in enumerate(raw)]
    if isinstance(raw, dict):
        return [(None, raw)]
    raise TaskDeclarationError(["expected `tasks:` with a list of task declarations"], path)


def load_task_file(path: str | os.PathLike[str]) -> tuple[TaskDeclaration, ...]:
    """Every declaration in one YAML file (`tasks: [...]`, a list, or a single mapping); folder sources
    are read relative to the file's folder. TaskDeclarationError naming the file, task and field."""
    path = str(path)
    try:
        raw = read_yaml(path)
    except FileNotFoundError:
        raise TaskDeclarationError(["no such task file"], path) from None
    except YamlError as err:
        raise TaskDeclarationError([str(err).removeprefix(f"{path}: ")], path) from None
    declarations = []
    for where, item in _items(raw, path):
        if isinstance(item, str):
            raise TaskDeclarationError([f"{item!r}: a task file holds declarations; list other task files "
                                        "in the spec's tasks:"], path, where)
        declarations.append(parse_declaration(item, Path(path).resolve().parent, path, where))
    return _distinct(declarations)


def declarations_from_spec_value(value: Any, base_dir: str | os.PathLike[str], path: str | None = None,
                                 key: str = "tasks") -> tuple[TaskDeclaration, ...]:
    """The typed declarations of a spec's `tasks:` value: a list whose items are task files (paths read
    from `base_dir`, the spec's folder) and inline declarations. None gives (). `path` (the spec file)
    and `key` name where each problem is; a name declared twice differently is an error naming both."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TaskDeclarationError([f"{key}: expected a list of task files and task declarations"], path)
    declarations: list[TaskDeclaration] = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if isinstance(item, str):
            file = Path(os.path.expanduser(item))
            file = file if file.is_absolute() else Path(base_dir) / file
            if not file.is_file():
                raise TaskDeclarationError([f"no task file {file}"], path, where)
            declarations.extend(load_task_file(file))
        else:
            declarations.append(parse_declaration(item, base_dir, path, where))
    return _distinct(declarations)


def _distinct(declarations: list[TaskDeclaration]) -> tuple[TaskDeclaration, ...]:
    """Each name once: an identical repeat is dropped, a different one is an error naming both."""
    by_name: dict[str, TaskDeclaration] = {}
    for declaration in declarations:
        first = by_name.get(declaration.name)
        if first is None:
            by_name[declaration.name] = declaration
        elif not first.same_as(declaration):
            raise conflict(first, declaration)
    return tuple(by_name.values())
