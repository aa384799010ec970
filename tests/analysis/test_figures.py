"""The figures' rules, read off the matplotlib objects: a log step axis with the final model set apart and
never joined to the curve, CI bands and chance lines labelled, y shared across formats, fonts >= 8 pt,
constrained layout, heatmaps with blank NaN cells, outlined trained-task cells and one colour scale per metric."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.patches import Rectangle

from evals.analysis import analyze, plots
from evals.analysis import figure_kit as kit
from tests.analysis.conftest import MAIN_STEP, known_records


def smallest_font(fig) -> float:
    return min(t.get_fontsize() for t in fig.findobj(lambda o: hasattr(o, "get_fontsize") and o.get_text()))


def test_step_axis_is_log_and_sets_the_final_model_apart():
    axis = kit.StepAxis.of([1000, 18000, None, 738000, 1000])
    assert axis.steps == (1000, 18000, 738000) and axis.has_final
    assert axis.x(None) > 738000 * 2 and axis.x(18000) == 18000
    with kit.styled():
        fig, axes = kit.new_figure(width=4, height=3)
        ax = axes[0][0]
        axis.apply(ax)
        assert ax.get_xscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1k", "18k", "738k", "final"]
        rules = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert len(rules) == 1 and 738000 < rules[0].get_xdata()[0] < axis.x(None)
        kit.save(fig, "x")
    without = kit.StepAxis.of([50, 200, 600])
    assert not without.has_final
    with kit.styled():
        fig, axes = kit.new_figure(width=4, height=3)
        without.apply(axes[0][0])
        assert "final" not in [t.get_text() for t in axes[0][0].get_xticklabels()]
        kit.save(fig, "x")
        fig, axes = kit.new_figure(width=4, height=3)
        kit.StepAxis.of([0, 10, 100]).apply(axes[0][0])  # a step-0 checkpoint cannot sit on a log axis
        assert axes[0][0].get_xscale() == "symlog"
        kit.save(fig, "x")


@pytest.fixture(scope="module")
def analysis():
    return analyze(known_records(), main_step=MAIN_STEP)


def test_curves_bands_chance_shared_y_and_final_apart(analysis):
    rows = analysis.curves[analysis.curves["eval_dataset"] == "mnli_matched"]
    axis = kit.StepAxis.of(analysis.curves["checkpoint_step"])
    with kit.styled():
        fig = plots.curve_figure("mnli_matched", rows, axis, "ptft, fixed, 4-shot")
        default, instruct = fig.axes[:2]
        assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)  # no suptitle over the panels
        assert default.get_shared_y_axes().joined(default, instruct)
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert kit.BAND_LABEL in labels and "chance (0.33)" in labels and "base" in labels
        base = next(line for line in default.get_lines() if line.get_label() == "base")
        assert list(base.get_xdata()) == [100.0, 200.0]  # the final model is not on the line ...
        finals = [c.lines[0] for c in default.containers if c.lines[0].get_xdata()[0] == axis.x(None)]
        assert len(finals) == 2  # ... but its own marker (base and FT mnli at "main")
        assert default.collections, "no CI band drawn"
        assert smallest_font(fig) >= kit.MIN_FONT_PT
        kit.save(fig, "x")


def test_heatmap_blank_nan_outlines_and_one_scale_per_metric():
    rows = pd.DataFrame({
        "train_dataset": ["mnli", "mnli", "mnli", "xsum", "xsum"], "train_format": ["default"] * 5,
        "lr": [1e-5] * 5, "method": ["full"] * 5,
        "eval_dataset": ["mnli_matched", "paws", "xsum", "mnli_matched", "xsum"], "eval_format": ["default"] * 5,
        "metric": ["accuracy", "accuracy", "rougeL", "accuracy", "rougeL"],
        "delta": [0.40, -0.05, -0.02, 0.10, 0.03],
    })
    panels = plots._panels(rows, "delta")
    assert [p.metric for p in panels] == ["accuracy", "rougeL"]
    with kit.styled():
        fig = kit.heatmap(panels, "t")
        accuracy, rouge = fig.axes[0], fig.axes[1]
        texts = [t.get_text() for t in accuracy.texts]
        assert "NaN" not in " ".join(texts) and len(texts) == 3  # xsum→paws has no value: no text at all
        assert {"+0.40", "-0.05", "+0.10"} == set(texts)
        outlines = [p for p in accuracy.patches if isinstance(p, Rectangle) and p.get_linewidth() == 2]
        assert [(p.get_x() + 0.5, p.get_y() + 0.5) for p in outlines] == [(0.0, 0.0)]  # mnli on mnli_matched
        rouge_outlines = [p for p in rouge.patches if isinstance(p, Rectangle) and p.get_linewidth() == 2]
        assert [(p.get_x() + 0.5, p.get_y() + 0.5) for p in rouge_outlines] == [(0.0, 1.0)]  # xsum on xsum
        limits = [im.get_clim() for ax in (accuracy, rouge) for im in ax.get_images()]
        assert limits == [(-0.40, 0.40), (-0.03, 0.03)]  # each metric on its own scale
        assert smallest_font(fig) >= kit.MIN_FONT_PT
        files = kit.save(fig, "heat")
    assert files["heat.pdf"].startswith(b"%PDF") and files["heat.png"].startswith(b"\x89PNG")
    assert not np.isnan(limits[0][0]) and math.isclose(limits[1][1], 0.03)


def test_vector_files_are_reproducible(analysis):
    first = plots.forgetting_figures(analysis)
    second = plots.forgetting_figures(analysis)
    assert first.keys() == second.keys() and first["forgetting_ptft_fixed.pdf"] == second["forgetting_ptft_fixed.pdf"]


def test_two_families_share_a_tokens_seen_axis():
    from evals.analysis.compute import analyze
    from evals.analysis.plots import token_curve_figures
    from evals.results import ResultRecord

    def base(model, step, tokens, value):
        return ResultRecord(base_model=model, checkpoint=f"step{step}", checkpoint_step=step, checkpoint_tokens=tokens,
                            eval_dataset="rte", eval_format="default", shots=0, metric="accuracy", value=value,
                            std=0.01, n=50)

    records = [base("olmo", 1000, 4.0, 0.5), base("olmo", 5000, 21.0, 0.6),
               base("pythia", 1000, 2.1, 0.48), base("pythia", 143000, 300.0, 0.62)]
    figures = token_curve_figures(analyze(records))
    assert sorted(figures) == ["curves_tokens_ptft_fixed_rte_default.pdf", "curves_tokens_ptft_fixed_rte_default.png"]
    one_family = [r for r in records if r.base_model == "olmo"]
    assert token_curve_figures(analyze(one_family)) == {}  # one model: its step axis says it all
