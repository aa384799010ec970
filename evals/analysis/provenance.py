"""Where an analysis came from: code version, date, inputs, the spec, data sources, n, seeds, the bands.

Collected once per analysis (`collect_provenance`) and shown in the report's provenance section; every
value is read from the records, the grid's `plan.json` or the code, and a value nobody recorded says so.
"""

from __future__ import annotations

import datetime
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ptft
from evals.results import ResultRecord
from ptft.core import storage
from ptft.core.layout import GridLayout
from ptft.core.version import git_commit

BAND = ("95% percentile bootstrap CI of each record's mean (ptft records); where a source has only a "
        "standard error (the study's tables), ±1.96 × std. Δ's CI combines the two records' standard errors "
        "(±1.96 × √(se_base² + se_ft²)), treating them as independent, which errs wide.")


@dataclass(frozen=True)
class Provenance:
    """The facts the report's provenance section states."""

    ptft_version: str
    git_commit: str | None  # None outside a git checkout (an installed wheel)
    created: str  # ISO date and time (UTC) of the analysis
    inputs: tuple[str, ...] = ()  # what was read (one line per input)
    spec_yaml: str | None = None  # the experiment spec, when the caller gave it
    plan: dict[str, Any] = field(default_factory=dict)  # summary of the grid's plan.json, when there is one
    record_sources: tuple[str, ...] = ()  # "ptft", "study", "study_official"
    data_sources: tuple[str, ...] = ()  # where ptft's evaluator read its data: "hub", "mini", a folder
    engine_versions: tuple[str, ...] = ()
    bootstrap_seeds: tuple[int, ...] = ()
    bootstrap_resamples: tuple[int, ...] = ()
    fewshot_seeds: tuple[int, ...] = ()
    n_per_eval: tuple[tuple[str, str, str, str], ...] = ()  # (source, mode, eval dataset, n values)
    band: str = BAND


def plan_summary(storage_path: str) -> dict[str, Any]:
    """What the grid's `plan.json` says about the run (name, sizes, lrs, training seeds, methods); {} if none."""
    path = GridLayout(storage_path).plan_file
    if not storage.exists(path):
        return {}
    plan = storage.read_json(path)
    trials = plan.get("trials", [])
    lrs: dict[str, set[float]] = defaultdict(set)
    for trial in trials:
        lrs[str(trial.get("train_dataset"))].add(trial.get("lr"))
    configs = [t.get("config", {}) for t in trials]
    return {
        "name": plan.get("name"), "plan_version": plan.get("plan_version"), "file": path,
        "cells": len(plan.get("cells", [])), "trials": len(trials), "eval_jobs": len(plan.get("eval_jobs", [])),
        "train_seeds": sorted({c["seed"] for c in configs if "seed" in c}),
        "lrs": {name: sorted(v for v in values if v is not None) for name, values in sorted(lrs.items())},
        "methods": sorted({json.dumps(t["method"], sort_keys=True) if not isinstance(t["method"], str) else t["method"]
                           for t in trials if "method" in t}),
    }


def _scoring(record: ResultRecord) -> dict[str, Any]:
    return ((record.extra or {}).get("cache_inputs") or {}).get("scoring") or {}


def collect_provenance(records: Sequence[ResultRecord], *, inputs: Sequence[str] = (), spec_yaml: str | None = None,
                       plan: dict[str, Any] | None = None) -> Provenance:
    """The provenance of an analysis of `records` (`inputs`: one line per input read)."""
    n_values: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    for r in records:
        if r.n is not None:
            n_values[(r.source, r.mode, r.eval_dataset)].add(int(r.n))
    n_per_eval = tuple((source, mode, dataset, ", ".join(str(n) for n in sorted(ns)))
                       for (source, mode, dataset), ns in sorted(n_values.items()))
    extra_sources = {str(r.extra["data_source"]) for r in records if (r.extra or {}).get("data_source")}
    return Provenance(
        ptft_version=ptft.__version__,
        git_commit=git_commit(),
        created=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        inputs=tuple(inputs),
        spec_yaml=spec_yaml,
        plan=dict(plan or {}),
        record_sources=tuple(sorted({r.source for r in records})),
        data_sources=tuple(sorted(extra_sources)),
        engine_versions=tuple(sorted({r.engine_version for r in records if r.engine_version})),
        bootstrap_seeds=tuple(sorted({r.bootstrap_seed for r in records if r.bootstrap_seed is not None})),
        bootstrap_resamples=tuple(sorted({int(s["bootstrap_resamples"]) for r in records
                                          if "bootstrap_resamples" in (s := _scoring(r))})),
        fewshot_seeds=tuple(sorted({int(s["fewshot_seed"]) for r in records if "fewshot_seed" in (s := _scoring(r))})),
        n_per_eval=n_per_eval,
    )
