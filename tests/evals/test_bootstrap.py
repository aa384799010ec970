"""The seeded bootstrap: reproducible, seed-dependent, and statistically sensible."""

from __future__ import annotations

import numpy as np
import pytest

from evals.bootstrap import bootstrap_mean

SCORES = np.random.default_rng(0).integers(0, 2, size=500).astype(float)


def test_same_seed_same_result_other_seed_differs():
    first = bootstrap_mean(SCORES, resamples=3000, seed=7)
    again = bootstrap_mean(SCORES, resamples=3000, seed=7)
    other = bootstrap_mean(SCORES, resamples=3000, seed=8)
    assert first == again
    assert (first.std, first.ci_low, first.ci_high) != (other.std, other.ci_low, other.ci_high)
    assert first.mean == other.mean == pytest.approx(SCORES.mean())
    assert first.seed == 7 and first.resamples == 3000 and first.n == 500


def test_standard_error_and_interval_are_sensible():
    result = bootstrap_mean(SCORES, resamples=3000, seed=1)
    p = SCORES.mean()
    assert result.std == pytest.approx(np.sqrt(p * (1 - p) / SCORES.size), rel=0.1)
    assert result.ci_low < result.mean < result.ci_high
    assert result.ci_high - result.ci_low == pytest.approx(2 * 1.96 * result.std, rel=0.15)
    assert result.ci_midpoint == pytest.approx((result.ci_low + result.ci_high) / 2)


def test_constant_and_single_scores():
    assert bootstrap_mean([1.0] * 10).std == 0.0
    single = bootstrap_mean([0.25])
    assert (single.mean, single.std, single.ci_low, single.ci_high) == (0.25, 0.0, 0.25, 0.25)
    with pytest.raises(ValueError):
        bootstrap_mean([])


def test_large_sets_are_chunked(monkeypatch):
    import evals.bootstrap as bootstrap

    monkeypatch.setattr(bootstrap, "_CHUNK_ENTRIES", 1000)  # force many small chunks
    result = bootstrap.bootstrap_mean(SCORES, resamples=200, seed=3)
    assert result.std == pytest.approx(np.sqrt(SCORES.mean() * (1 - SCORES.mean()) / SCORES.size), rel=0.25)
