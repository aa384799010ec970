"""Pieces every section of the spec uses: strict models, dataset and format lookups, learning-rate
lists (`LearningRates`) and the format checks."""

from __future__ import annotations

import difflib
import math
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

STRICT = ConfigDict(extra="forbid", frozen=True)


def registered_task(name: str):
    """Look a dataset up in the registry; the registry's error carries the "did you mean"."""
    from ptft import tasks

    return tasks.get_task(name)


def _formats() -> tuple[str, ...]:
    from ptft import tasks

    return tuple(tasks.FORMATS)



# ------------------------------------------------------------------------------- learning rates
class LogUniform(BaseModel):
    """A log-uniform lr range, sampled at plan time with a seed so trial ids stay stable on resume."""

    model_config = STRICT

    log_uniform: tuple[float, float]
    samples: int = Field(ge=1)
    seed: int = 0

    @field_validator("log_uniform")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (0 < low < high):
            raise ValueError(f"needs 0 < low < high, got [{low}, {high}]")
        return value

    def values(self) -> list[float]:
        import numpy as np

        rng = np.random.default_rng(self.seed)
        logs = rng.uniform(math.log(self.log_uniform[0]), math.log(self.log_uniform[1]), self.samples)
        return sorted(float(f"{math.exp(x):.3g}") for x in logs)


LearningRates = list[float] | LogUniform


def lr_values(spec: LearningRates) -> list[float]:
    return spec.values() if isinstance(spec, LogUniform) else list(spec)


def check_lr_list(value: Any) -> Any:
    if isinstance(value, list):
        if not value:
            raise ValueError("needs at least one learning rate")
        for lr in value:
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < lr < 1):
                raise ValueError(f"learning rate {lr!r} is not a number in (0, 1)")
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate learning rates in {value}")
    return value



def no_duplicate_names(entries: list[Any]) -> None:
    names = [entry.name for entry in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"datasets: duplicate datasets {dupes}")


def supported_formats(task, mode: str) -> list[str]:
    return [f for f in _formats() if task.supports(f, mode)]


def lacking_formats(name: str, wanted: list[str], mode: str) -> str | None:
    """What dataset `name` lacks of the formats `wanted` in `mode`, said as an error (the caller adds where
    and the fix), or None when it has them all."""
    task = registered_task(name)
    missing = [f for f in wanted if not task.supports(f, mode)]
    if not missing:
        return None
    return f"dataset {name!r} has no format(s) {missing} in {mode} mode (it has {supported_formats(task, mode)})"


def check_formats(value: list[str], where: str | None = None) -> list[str]:
    allowed = _formats()
    for i, fmt in enumerate(value):
        if fmt not in allowed:
            hint = difflib.get_close_matches(fmt, allowed, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            prefix = f"{where}[{i}]: " if where else f"[{i}]: "
            raise ValueError(f"{prefix}unknown format {fmt!r}{did_you_mean}; allowed: {list(allowed)}")
    if len(set(value)) != len(value):
        raise ValueError(f"duplicate formats in {value}")
    return value


