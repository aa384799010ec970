"""Evaluation: the scoring engine, aggregation, results records and the analysis."""

PTFT_PACKAGE = True  # ptft.core.packages checks this: PyPI has another package named `evals`
