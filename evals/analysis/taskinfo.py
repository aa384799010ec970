"""What the analysis needs to know about datasets: in-domain eval sets, chance levels, label artifacts."""

from __future__ import annotations

import math

# A training set's own eval sets. Everything else is off-task (cross-domain or cross-task), which is
# where forgetting is read. tulu is instruction tuning: no eval set is in-domain for it.
IN_DOMAIN: dict[str, frozenset[str]] = {
    "mnli": frozenset({"mnli_matched", "mnli_mismatched"}),
    "paws": frozenset({"paws"}),
    "socialiqa": frozenset({"socialiqa"}),
    "xsum": frozenset({"xsum"}),
    "tulu": frozenset(),
}

# QQP/STS-B test labels are hidden, so the study's faithful pipeline scores against all-"no" golds
# (STUDY §1.1). The official multiple-choice table came from another harness with labelled splits
# (its QQP accuracy sits near 0.5), so the artifact is not flagged there.
LABEL_ARTIFACT_DATASETS = frozenset({"qqp", "stsb"})
_ARTIFACT_FREE_SOURCES = frozenset({"study_official"})


def in_domain(train_dataset: str, eval_dataset: str) -> bool:
    """Is `eval_dataset` one of `train_dataset`'s own eval sets? Unknown training sets: same name only."""
    own = IN_DOMAIN.get(train_dataset)
    if own is None:
        return eval_dataset == train_dataset
    return eval_dataset in own


def chance_level(eval_dataset: str) -> float | None:
    """`tasks.get_task(name).chance_level`, or None when the registry is absent or does not know the name."""
    try:
        from ptft.tasks import get_task  # the registry may not be installed yet; then nothing is flagged
    except ImportError:
        return None
    try:
        level = get_task(eval_dataset).chance_level
    except Exception:  # unknown name (UnknownTaskError is a KeyError) or a half-built registry
        return None
    if level is None:
        return None
    level = float(level)
    return None if math.isnan(level) else level


def at_chance(base: float | None, chance: float | None, margin: float) -> bool:
    """Is the base score at (or below) chance, within `margin`? Missing numbers are never flagged."""
    if base is None or chance is None or math.isnan(base):
        return False
    return base <= chance + margin


def label_artifact(eval_dataset: str, mode: str, source: str) -> bool:
    """Is this cell the known QQP/STS-B all-"no" label artifact of the faithful pipeline?"""
    return mode == "faithful" and eval_dataset in LABEL_ARTIFACT_DATASETS and source not in _ARTIFACT_FREE_SOURCES
