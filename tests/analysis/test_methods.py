"""The method axis: two methods from the same checkpoints and lr stay apart in every table, and the
comparison (table, figure, findings) says which learns more and which forgets more."""

from __future__ import annotations

import pandas as pd
import pytest

from evals.analysis import analyze, findings, plots, write_outputs
from evals.analysis import figure_kit as kit
from evals.analysis.matrices import Z95
from tests.analysis.conftest import MAIN_STEP, known_records, two_method_records

HALF = Z95 * (2 * 0.01 ** 2) ** 0.5  # the CI half-width of one Δ when both records have std 0.01


@pytest.fixture(scope="module")
def analysis():
    return analyze(two_method_records(), main_step=MAIN_STEP)


def one(frame: pd.DataFrame, **where) -> pd.Series:
    rows = frame
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, f"{where}: {len(rows)} rows"
    return rows.iloc[0]


def test_methods_are_separate_configurations_in_every_table(analysis):
    assert analysis.methods == ["full", "lora-r16"]
    for method, gain in (("full", 0.40), ("lora-r16", 0.20)):
        row = one(analysis.transfer, method=method, checkpoint="100", eval_dataset="mnli_matched",
                  eval_format="default")
        assert row["delta"] == pytest.approx(gain) and row["base"] == 0.40  # one shared base record
        assert (row["delta_ci_low"], row["delta_ci_high"]) == pytest.approx((gain - HALF, gain + HALF))
    assert set(analysis.transfer_mean["method"]) == set(analysis.forgetting["method"]) == {"full", "lora-r16"}
    spread = one(analysis.format_sensitivity, model_kind="finetuned", method="lora-r16", checkpoint="100",
                 eval_dataset="mnli_matched")
    assert spread["spread"] == pytest.approx(0.05)
    assert set(analysis.groups["method"]) == {"full", "lora-r16"}  # groups never pool two methods
    assert set(analysis.curves["method"]) == {"full", "lora-r16"}


def test_method_comparison_numbers(analysis):
    table = analysis.method_comparison
    assert len(table) == 6
    lora_100 = one(table, method="lora-r16", checkpoint="100")
    assert lora_100["in_domain_gain"] == pytest.approx(0.20) and lora_100["n_in_domain"] == 1
    assert (lora_100["in_domain_ci_low"], lora_100["in_domain_ci_high"]) == pytest.approx((0.20 - HALF, 0.20 + HALF))
    assert lora_100["off_task_forgetting"] == pytest.approx(-0.015) and lora_100["n_off_task"] == 2
    assert lora_100["in_domain_evals"] == "mnli_matched"  # the instruct cell is not the training format
    lora_main = one(table, method="lora-r16", checkpoint="main")
    assert lora_main["off_task_forgetting"] == 0.0 and lora_main["off_task_delta"] == pytest.approx(0.005)
    full = table[table["method"] == "full"]
    assert list(full["checkpoint"]) == ["100", "200", "main"]  # step order, the final model last
    assert full["in_domain_gain"].to_numpy() == pytest.approx([0.40, 0.40, 0.40])
    assert full["off_task_forgetting"].to_numpy() == pytest.approx([-0.10, -0.10, -0.10])


def test_findings_say_who_learns_and_who_forgets(analysis):
    text = findings.methods(analysis)
    assert "lora-r16 learns less and forgets less than full, over 3 checkpoint(s)" in text
    assert "gain +0.250 vs +0.400" in text and "off-task forgetting 0.005 vs 0.100" in text
    assert "goes from -0.200 at 100 to -0.100 at main" in text


def test_comparison_figure_joins_each_methods_checkpoints(analysis):
    with kit.styled():
        fig = plots.method_figure(analysis.method_comparison, "ptft, fixed, 4-shot")
        ax = fig.axes[0]
        lines = {bars.get_label(): bars.lines[0] for bars in ax.containers}  # errorbar: its data line first
        assert set(lines) == {"full", "lora-r16"}
        x, y = lines["lora-r16"].get_data()
        assert list(y) == pytest.approx([0.20, 0.25, 0.30])  # in step order
        assert list(x) == pytest.approx([0.015, 0.0, 0.0])  # forgetting as a positive loss
        assert {t.get_text() for t in ax.texts} >= {"100", "200", "final"}
        assert min(t.get_fontsize() for t in fig.findobj(lambda o: hasattr(o, "get_fontsize"))) >= kit.MIN_FONT_PT
        kit.save(fig, "closed")
    figures = plots.all_figures(analysis)
    assert {"method_comparison_ptft_fixed.png", "method_comparison_ptft_fixed.pdf"} <= set(figures)
    assert any(name.startswith("groups_") and name.endswith("_lora-r16.png") for name in figures)


def test_report_and_csv_carry_the_comparison(analysis, tmp_path):
    written = write_outputs(analysis, str(tmp_path))
    csv = pd.read_csv(written["method_comparison.csv"])
    assert set(csv["method"]) == {"full", "lora-r16"} and len(csv) == 6
    html = (tmp_path / "report.html").read_text()
    assert '<section id="methods">' in html and 'id="t-methods"' in html
    assert "learns less and forgets less" in html
    assert "FT mnli · lora-r16" not in html  # labels live in the figures; the page names methods in columns


def test_a_single_method_grid_has_no_method_section_or_figure(tmp_path):
    analysis = analyze(known_records(), main_step=MAIN_STEP)
    figures = plots.all_figures(analysis)
    assert not any(name.startswith("method_comparison") for name in figures)
    assert not any("full" in name for name in figures)  # names as before the method axis
    write_outputs(analysis, str(tmp_path), figures)
    html = (tmp_path / "report.html").read_text()
    assert '<section id="methods">' not in html and "One fine-tuning method in these records (full)" in html
    assert (tmp_path / "method_comparison.csv").is_file()


def test_the_stage_table_compares_each_stage_with_the_base_and_the_stage_before():
    from evals.analysis.compute import analyze
    from evals.analysis.stages import stage_summary
    from evals.results import ResultRecord

    def record(value, **identity):
        kind = "finetuned" if identity else "base"
        return ResultRecord(model_kind=kind, base_model="m", checkpoint="step1", checkpoint_step=1,
                            eval_dataset="mnli_matched", eval_format="default", shots=0, metric="accuracy",
                            value=value, std=0.01, n=100, **identity)

    cpt = dict(train_dataset="news", train_format="default", objective="continual_pt", lr=1e-4)
    sft = dict(train_dataset="mnli", train_format="default", lr=1e-5)
    records = [record(0.40), record(0.42, **cpt), record(0.90, **sft, prior_stages="continual_pt:news"),
               record(0.70, **dict(sft, train_dataset="paws"), prior_stages="continual_pt:news"),
               record(0.80, **sft)]  # the plain SFT cell: not a recipe model
    analysis = analyze(records)
    table = analysis.stages.set_index("lineage")
    assert sorted(table.index) == ["continual_pt:news", "continual_pt:news>sft:mnli/default",
                                   "continual_pt:news>sft:paws/default"]
    mnli = table.loc["continual_pt:news>sft:mnli/default"]
    assert mnli["parent"] == "continual_pt:news" and mnli["stage"] == 2 and bool(mnli["own_eval"])
    assert mnli["delta_vs_base"] == pytest.approx(0.50) and mnli["delta_vs_parent"] == pytest.approx(0.48)
    assert table.loc["continual_pt:news", "delta_vs_parent"] == pytest.approx(0.02)  # a first stage: vs base
    summary = stage_summary(analysis.stages).set_index("lineage")
    assert summary.loc["continual_pt:news>sft:paws/default", "mean_delta_vs_parent"] == pytest.approx(0.28)
    # The plain and the recipe's SFT model are two transfer rows, never one.
    transfer = analysis.transfer[analysis.transfer["train_dataset"] == "mnli"]
    assert sorted(transfer["prior_stages"].fillna("-")) == ["-", "continual_pt:news"]
    assert "stages" in analysis.tables()
