"""Seeded percentile bootstrap of a mean (the study used scipy's, unseeded; docs/study.md §5.4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Resample index matrices are built in chunks of at most this many entries (~64 MB of int64),
# so a 400k-example eval set does not need a 3000 x 400k matrix at once.
_CHUNK_ENTRIES = 8_000_000


@dataclass(frozen=True)
class BootstrapResult:
    mean: float
    std: float  # standard error: std (ddof=1) of the resampled means
    ci_low: float
    ci_high: float
    n: int
    resamples: int
    seed: int
    confidence: float

    @property
    def ci_midpoint(self) -> float:
        """The study's reported "Performance" (the CI midpoint, not the mean)."""
        return (self.ci_low + self.ci_high) / 2

    def to_dict(self) -> dict[str, float | int]:
        return {
            "mean": self.mean, "std": self.std, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "n": self.n, "resamples": self.resamples, "seed": self.seed, "confidence": self.confidence,
        }


def bootstrap_mean(scores: Sequence[float] | np.ndarray, resamples: int = 3000, seed: int = 1234,
                   confidence: float = 0.95) -> BootstrapResult:
    """Mean of `scores` with a bootstrap standard error and percentile confidence interval."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("bootstrap_mean needs a non-empty 1-d array of per-example scores")
    if resamples < 2:
        raise ValueError("bootstrap_mean needs at least 2 resamples")
    n = values.size
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    per_chunk = max(1, _CHUNK_ENTRIES // n)
    for start in range(0, resamples, per_chunk):
        stop = min(resamples, start + per_chunk)
        picks = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[picks].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return BootstrapResult(
        mean=float(values.mean()), std=float(means.std(ddof=1)), ci_low=float(low), ci_high=float(high),
        n=int(n), resamples=int(resamples), seed=int(seed), confidence=float(confidence),
    )
