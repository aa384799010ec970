"""Evaluation: the scoring engine, aggregation, results records and the analysis."""
