"""How numbers read in the report and on figures: by what they are (a metric, a Δ, a step, an lr).

One helper per kind, shared by the findings, the HTML tables and the figures, so a number reads the same
everywhere: metrics as 0.xxx, deltas signed (+0.123, never -6.939e-15 or -0.000), relative Δ blank where
the base is near 0, checkpoints by step with the final model last.
"""

from __future__ import annotations

import math

from evals.analysis.matrices import REL_DELTA_MIN_BASE

DIGITS = 3
# Metrics whose values are fractions in [0, 1]: accuracy-like and ROUGE F-measures.
FRACTION_METRICS = frozenset({"accuracy", "acc", "acc_norm", "rougeL", "rouge1", "rouge2", "exact_match", "f1"})


def missing(value: object) -> bool:
    """None, NaN and pandas' NA: the ways a missing number reaches these helpers."""
    if value is None:
        return True
    try:
        return bool(math.isnan(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value) in ("<NA>", "nan", "NaN")


def value_text(value: object, metric: str | None = None) -> str:
    """A metric's value: 0.xxx for fractions, 4 significant digits otherwise; blank when missing."""
    if missing(value):
        return ""
    number = float(value)  # type: ignore[arg-type]
    if metric is None or metric in FRACTION_METRICS:
        return f"{number:.{DIGITS}f}"
    return f"{number:.4g}"


def delta_text(value: object) -> str:
    """A signed difference: +0.123 / -0.045; 0.000 for anything that rounds to zero (no -0.000)."""
    if missing(value):
        return ""
    number = float(value)  # type: ignore[arg-type]
    if abs(number) < 0.5 * 10 ** -DIGITS:
        return f"{0:.{DIGITS}f}"
    return f"{number:+.{DIGITS}f}"


def ci_text(low: object, high: object) -> str:
    """A confidence interval of a Δ: [+0.100, +0.300]; blank when either end is missing."""
    if missing(low) or missing(high):
        return ""
    return f"[{delta_text(low)}, {delta_text(high)}]"


def rel_text(rel: object, base: object) -> str:
    """Relative Δ in percent, blank where the base is missing or within REL_DELTA_MIN_BASE of 0."""
    if missing(rel) or missing(base) or abs(float(base)) < REL_DELTA_MIN_BASE:  # type: ignore[arg-type]
        return ""
    return f"{float(rel):+.0f}%"  # type: ignore[arg-type]


def lr_text(lr: object) -> str:
    """A learning rate: 2e-6, 3e-4, 0.01 (no zero-padded exponent to wrap as "2e-/06")."""
    if missing(lr):
        return ""
    text = f"{float(lr):.3g}"  # type: ignore[arg-type]
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def step_text(step: object) -> str:
    """A pre-training step for tick labels and tables: 50, 1.2k, 18k, 1.4M; "final" when unknown."""
    if missing(step):
        return "final"
    number = int(step)  # type: ignore[arg-type]
    for scale, suffix in ((1_000_000, "M"), (1_000, "k")):
        if abs(number) >= scale:
            return f"{number / scale:.3g}{suffix}"
    return str(number)


def step_order(step: object) -> tuple[bool, int]:
    """A sort key along pre-training: by step, the final model (step unknown) last."""
    return (True, 0) if missing(step) else (False, int(step))  # type: ignore[arg-type]


def count_text(value: object) -> str:
    """A whole number, blank when missing."""
    return "" if missing(value) else str(int(value))  # type: ignore[arg-type]
