"""Errors of the tasks layer: bad data and unknown names, each saying exactly where and what."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DataError(ValueError):
    """A dataset row (or split) that cannot be rendered: names dataset, split, row and field."""

    def __init__(
        self, dataset: str, split: str | None, row: int | None, field: str | None, problem: str
    ) -> None:
        self.dataset = dataset
        self.split = split
        self.row = row
        self.field = field
        self.problem = problem
        where = [f"dataset {dataset!r}"]
        if split is not None:
            where.append(f"split {split!r}")
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {problem}")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class UnknownTaskError(KeyError, ValueError):
    """An unknown dataset name. Both a KeyError (registry lookup) and a ValueError (bad input)."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.message = f"unknown dataset {name!r}{did_you_mean(name, known)}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message; keep it readable
        return self.message


def check_choice(kind: str, value: str, choices: Iterable[str]) -> None:
    """Raise ValueError naming `kind` when `value` is not one of `choices`, with a suggestion."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}{did_you_mean(value, choices)}; choose from {choices}")
