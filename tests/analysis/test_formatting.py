"""Numbers as the report shows them, and tables that order checkpoints by step and sort by raw value."""

from __future__ import annotations

import math
import re

import pandas as pd

from evals.analysis import analyze
from evals.analysis import formatting as fmt
from evals.analysis import html_tables as ht
from evals.analysis.matrices import relative_delta
from tests.analysis.conftest import rec


def test_numbers_read_by_kind():
    assert fmt.delta_text(-6.938893903907228e-15) == "0.000" and fmt.delta_text(-0.0004) == "0.000"
    assert fmt.delta_text(0.1234) == "+0.123" and fmt.delta_text(-0.05) == "-0.050"
    assert fmt.value_text(0.5, "accuracy") == "0.500" and fmt.value_text(0.12345, "rougeL") == "0.123"
    assert fmt.value_text(float("nan"), "accuracy") == "" and fmt.value_text(None) == "" and fmt.value_text(pd.NA) == ""
    assert fmt.value_text(12.3456, "perplexity") == "12.35"
    assert fmt.lr_text(2e-6) == "2e-6" and fmt.lr_text(3e-4) == "0.0003" and fmt.lr_text(1e-5) == "1e-5"
    assert fmt.ci_text(0.1, 0.3) == "[+0.100, +0.300]" and fmt.ci_text(float("nan"), 0.3) == ""
    assert fmt.step_text(50) == "50" and fmt.step_text(18000) == "18k" and fmt.step_text(1_450_000) == "1.45M"
    assert fmt.step_text(None) == "final"
    assert sorted([None, 600, 50, 200], key=fmt.step_order) == [50, 200, 600, None]


def test_relative_delta_is_blank_where_the_base_is_near_zero():
    assert math.isnan(relative_delta(0.9, 0.0002))  # the study's table showed +4500% here
    assert fmt.rel_text(4500.0, 0.0002) == "" and fmt.rel_text(50.0, 0.4) == "+50%"
    records = [rec("base", "100", "xsum", 0.0002, metric="rougeL"),
               rec("finetuned", "100", "xsum", 0.3, train="xsum", lr=1e-6, metric="rougeL")]
    transfer = analyze(records).transfer
    assert math.isnan(transfer["rel_delta"].iloc[0]) and transfer["delta"].iloc[0] > 0.29


def test_a_table_orders_checkpoints_by_step_and_sorts_by_raw_values():
    frame = pd.DataFrame({"checkpoint": ["step200", "main", "step50", "step600"],
                          "checkpoint_step": pd.array([200, None, 50, 600], dtype="Int64"),
                          "delta": [0.2, -6.9e-15, 0.05, -0.1], "metric": ["accuracy"] * 4, "base": [0.5, 0.0001, 0.4, 1.0]})
    html = ht.render_table(frame, [ht.checkpoint(), ht.delta("delta"), ht.rel("delta", "base")], table_id="t")
    cells = re.findall(r'<td data-v="([^"]*)">([^<]*)</td><td data-v="[^"]*">([^<]*)</td>', html)
    assert [(float(v), label) for v, label, _ in cells] == [(200.0, "step200"), (1e18, "main"), (50.0, "step50"),
                                                            (600.0, "step600")]
    assert [shown for _, _, shown in cells] == ["+0.200", "0.000", "+0.050", "-0.100"]
    assert '<div class="table-wrap">' in html and 'class="filter"' not in html  # short: no filter box
    long = ht.render_table(pd.concat([frame] * 5), [ht.checkpoint()], table_id="long", max_rows=18)
    assert 'class="filter"' in long and "First 18 of 20 rows" in long


def test_findings_count_only_the_cis_that_exist():
    from evals.analysis import findings

    records = [rec("base", "100", "mnli_matched", 0.40, std=None), rec("base", "100", "paws", 0.80, std=None),
               rec("finetuned", "100", "mnli_matched", 0.70, train="mnli", lr=1e-5, std=None),
               rec("finetuned", "100", "paws", 0.60, train="mnli", lr=1e-5, std=None)]
    analysis = analyze(records)
    gain = findings.in_domain_gain(analysis)
    assert "0.400 → 0.700 (+0.300)" in gain and "No CI: the source gives no standard error." in gain
    lost = findings.transfers_and_forgetting(analysis)
    assert "no CI: the source gives no standard error" in lost and "(-0.200)" in lost
    assert "excludes 0" not in gain + lost
