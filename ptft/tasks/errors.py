"""Errors of the tasks layer: bad data and unknown names, each saying exactly where and what."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DataError(ValueError):
    """A dataset row (or split) that cannot be rendered: names dataset, split, row and field.

    For a local jsonl file, `path` is the file and `row` the 1-based line number in it; for a hub split,
    `row` is the row's index in the split. `fix` says what to do about it. Pickles intact (it crosses Ray).
    """

    def __init__(
        self, dataset: str, split: str | None, row: int | None, field: str | None, problem: str,
        path: str | None = None, fix: str | None = None,
    ) -> None:
        self.dataset = dataset
        self.split = split
        self.row = row
        self.field = field
        self.problem = problem
        self.path = path
        self.fix = fix
        where = [f"dataset {dataset!r}"]
        if split is not None:
            where.append(f"split {split!r}")
        if row is not None:
            where.append(f"line {row}" if path is not None else f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        message = f"{', '.join(where)}: {problem}"
        if path is not None:
            message = f"{path}{f':{row}' if row is not None else ''}: {message}"
        if fix:
            message += f"; fix: {fix}"
        super().__init__(message)

    @property
    def line(self) -> int | None:
        """The 1-based line in `path` (None for hub rows and whole-split problems)."""
        return self.row if self.path is not None else None

    def at(self, path: str, line: int | None, fix: str | None = None) -> DataError:
        """The same problem, placed at `line` of the local file `path`."""
        return type(self)(self.dataset, self.split, line, self.field, self.problem, path, fix or self.fix)

    def __reduce__(self):  # the default would call __init__(message) alone and fail (Ray, multiprocessing)
        return (type(self), (self.dataset, self.split, self.row, self.field, self.problem, self.path, self.fix))


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class UnknownTaskError(KeyError, ValueError):
    """An unknown dataset name. Both a KeyError (registry lookup) and a ValueError (bad input)."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        known = sorted(known)
        self.message = f"unknown dataset {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message; keep it readable
        return self.message

    def __reduce__(self):  # rebuilt from the message, so it pickles without the known names
        return (_unknown_task_from_message, (self.name, self.message))


def _unknown_task_from_message(name: str, message: str) -> UnknownTaskError:
    err = UnknownTaskError.__new__(UnknownTaskError)
    err.name, err.message = name, message
    err.args = (message,)
    return err


def check_choice(kind: str, value: str, choices: Iterable[str]) -> None:
    """Raise ValueError naming `kind` when `value` is not one of `choices`, with a suggestion."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}{did_you_mean(value, choices)}; choose from {choices}")
