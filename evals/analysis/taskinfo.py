"""The analysis's questions to the task registry, and its rules for what the registry does not settle.

The facts (a training set's in-domain eval sets, chance levels, hidden faithful-mode labels) live on
`ptft.tasks.TaskSpec`. What is decided here: records may name datasets the registry does not know (the
study's published tables, custom sets), which then count as in-domain only for their own name and are
never flagged; what "at chance" means; and which sources carry the faithful-mode label artifact.
"""

from __future__ import annotations

import math

from ptft import tasks

# The official multiple-choice table came from another harness with labelled splits (its QQP
# accuracy sits near 0.5), so the hidden-label artifact is not flagged there.
_ARTIFACT_FREE_SOURCES = frozenset({"study_official"})


def _spec(name: object) -> tasks.TaskSpec | None:
    """The registry entry of `name`, or None for a name it does not know (or a missing name)."""
    if not isinstance(name, str):
        return None
    try:
        return tasks.get_task(name)
    except tasks.UnknownTaskError:
        return None


def in_domain(train_dataset: str, eval_dataset: str) -> bool:
    """Is `eval_dataset` one of `train_dataset`'s own eval sets (`ptft.tasks.in_domain`)?

    A training set the registry does not know (or knows only as an eval set): the same name only.
    """
    if _spec(train_dataset) is None:
        return eval_dataset == train_dataset
    try:
        return eval_dataset in tasks.in_domain(train_dataset)
    except ValueError:  # an eval-only dataset
        return eval_dataset == train_dataset


def chance_level(eval_dataset: str) -> float | None:
    """`get_task(name).chance_level`, or None when the registry does not know the name or has no level."""
    spec = _spec(eval_dataset)
    if spec is None or spec.chance_level is None:
        return None
    level = float(spec.chance_level)
    return None if math.isnan(level) else level


def at_chance(base: float | None, chance: float | None, margin: float) -> bool:
    """Is the base score at (or below) chance, within `margin`? Missing numbers are never flagged."""
    if base is None or chance is None or math.isnan(base):
        return False
    return base <= chance + margin


def label_artifact(eval_dataset: str, mode: str, source: str) -> bool:
    """Is this cell the faithful pipeline's hidden-label artifact (QQP/STS-B scored against all-"no" golds)?"""
    if mode != "faithful" or source in _ARTIFACT_FREE_SOURCES:
        return False
    spec = _spec(eval_dataset)
    return spec is not None and spec.faithful_hidden_labels
