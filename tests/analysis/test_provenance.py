"""The report's provenance: the spec as given, the grid's plan, code version, n per eval set, seeds, the
bands; and statements only where the data backs them (no "final model" line without a final model)."""

from __future__ import annotations

import dataclasses
import json
from html import escape as html_escape

from evals.analysis import analyze, write_outputs
from evals.analysis.pipeline import AnalyzeConfig, run_analysis
from evals.analysis.provenance import collect_provenance, git_commit, plan_summary
from ptft.core.layout import GridLayout
from tests.analysis.conftest import MAIN_STEP, known_records
from tests.analysis.test_command import write_grid

SPEC = "# the spec as run\nname: tiny\nmodel:\n  name: tiny-olmo\n"


def scored(record, seed: int = 1234):
    """A record as the evaluator writes it: bootstrap seed, engine version, scoring settings, data source."""
    scoring = {"bootstrap_resamples": 200, "bootstrap_seed": seed, "fewshot_seed": 7}
    return dataclasses.replace(record, bootstrap_seed=seed, engine_version="ptft-evals-3",
                               extra={"cache_inputs": {"scoring": scoring}, "data_source": "mini"})


def test_provenance_of_a_grid_with_spec_and_plan(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    storage = tmp_path / "grid"
    write_grid(storage, [scored(r) for r in known_records()])
    plan = {"plan_version": 2, "name": "tiny", "cells": [{}, {}], "eval_jobs": [{}] * 5, "trials": [
        {"train_dataset": "mnli", "lr": 1e-5, "config": {"seed": 42}},
        {"train_dataset": "xsum", "lr": 2e-6, "config": {"seed": 42}}]}
    (storage / "plan.json").write_text(json.dumps(plan))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    outcome = run_analysis(AnalyzeConfig(storage=str(storage), out=str(tmp_path / "out"), spec=str(spec),
                                         main_step=MAIN_STEP))
    html = (tmp_path / "out" / "report.html").read_text()
    provenance = html[html.index('<section id="provenance">'):]
    assert "# the spec as run\nname: tiny" in provenance
    assert "tiny (plan_version 2): 2 cells, 2 trials, 5 eval jobs" in provenance
    assert "<dt>training seeds</dt><dd>42</dd>" in provenance and "mnli: 1e-5; xsum: 2e-6" in provenance
    assert "<dt>bootstrap seeds</dt><dd>1234</dd>" in provenance and "<dt>few-shot seeds</dt><dd>7</dd>" in provenance
    assert "<dt>eval data source</dt><dd>mini</dd>" in provenance and "ptft-evals-3" in provenance
    assert "95% percentile bootstrap CI" in provenance
    assert '<td>mnli_matched</td><td>100</td>' in provenance  # n per eval set
    assert "final model (step unknown) sits apart" in provenance  # known_records has checkpoint "main"
    assert html_escape(outcome.notes[0]) in provenance
    passed = run_analysis(AnalyzeConfig(storage=str(storage), out=str(tmp_path / "out2")), spec_yaml="name: edited\n")
    assert "name: edited" in open(passed.report).read()  # the grid's own spec (its --set edits included) wins


def test_no_claims_the_data_does_not_back(tmp_path):
    records = [r for r in known_records() if r.checkpoint != "main"]
    analysis = analyze(records, main_step=MAIN_STEP)
    write_outputs(analysis, str(tmp_path))
    html = (tmp_path / "report.html").read_text()
    assert "final model" not in html and "step unknown" not in html
    assert "No spec given" in html


def test_plan_summary_and_commit(tmp_path):
    assert plan_summary(str(tmp_path)) == {}
    (tmp_path / "plan.json").write_text(json.dumps({"name": "x", "trials": [{"train_dataset": "paws", "lr": 1e-5,
                                                                            "method": "full", "config": {}}]}))
    summary = plan_summary(str(tmp_path))
    assert summary["lrs"] == {"paws": [1e-5]} and summary["methods"] == ["full"] and summary["train_seeds"] == []
    assert summary["file"] == GridLayout(str(tmp_path)).plan_file
    assert git_commit(tmp_path) is None  # not a checkout: unknown, not invented
    commit = git_commit()
    assert commit is None or len(commit.split("+")[0]) == 12
    provenance = collect_provenance(known_records())
    assert provenance.n_per_eval[0] == ("ptft", "fixed", "mnli_matched", "100") and provenance.bootstrap_seeds == ()
