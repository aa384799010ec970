"""Transfer, forgetting, format sensitivity and groups on the hand-made grid: every number known."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from evals.analysis import analyze, taskinfo
from evals.analysis.frame import DuplicateRecordError, checkpoint_order, plot_step
from evals.analysis.groups import slope
from tests.analysis.conftest import MAIN_STEP, ft_mnli, known_records, rec


@pytest.fixture
def analysis(chance):
    return analyze(known_records(), main_step=MAIN_STEP)


def cell(frame: pd.DataFrame, **where) -> pd.Series:
    rows = frame
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, f"{where}: {len(rows)} rows"
    return rows.iloc[0]


def test_delta_and_relative_delta(analysis):
    row = cell(analysis.transfer, checkpoint="100", train_dataset="mnli", eval_dataset="mnli_matched",
               eval_format="default")
    assert (row["base"], row["finetuned"]) == (0.30, 0.60)
    assert row["delta"] == pytest.approx(0.30)
    assert row["rel_delta"] == pytest.approx(100.0)
    assert row["status"] == "ok"
    main = cell(analysis.transfer, checkpoint="main", train_dataset="mnli", eval_dataset="paws")
    assert main["delta"] == pytest.approx(0.0)
    assert main["step"] == MAIN_STEP and pd.isna(main["checkpoint_step"])


def test_missing_cells_are_nan_rows_and_counted(analysis):
    transfer = analysis.transfer
    missing_ft = cell(transfer, checkpoint="200", train_dataset="mnli", eval_dataset="xsum")
    assert missing_ft["status"] == "missing_finetuned" and missing_ft["base"] == 0.20
    assert math.isnan(missing_ft["finetuned"]) and math.isnan(missing_ft["delta"])
    missing_base = cell(transfer, checkpoint="main", train_dataset="mnli", eval_dataset="xsum")
    assert missing_base["status"] == "missing_base" and math.isnan(missing_base["delta"])
    counts = analysis.counts
    assert counts["transfer_cells"] == 16
    assert (counts["transfer_ok"], counts["transfer_missing_finetuned"], counts["transfer_missing_base"],
            counts["transfer_missing_both"]) == (12, 1, 1, 2)
    assert counts["base_records_without_finetuned_partner"] == 1  # mnli_matched[io] at 100
    assert (counts["records"], counts["records_base"], counts["records_finetuned"]) == (23, 10, 13)


def test_transfer_mean_with_n(analysis):
    mean = analysis.transfer_mean
    in_domain = cell(mean, train_dataset="mnli", eval_dataset="mnli_matched", eval_format="default")
    assert in_domain["delta_mean"] == pytest.approx((0.30 + 0.40 + 0.40) / 3)
    assert (in_domain["n"], in_domain["n_missing"]) == (3, 0)
    off = cell(mean, train_dataset="mnli", eval_dataset="xsum")
    assert off["delta_mean"] == pytest.approx(-0.05)
    assert (off["n"], off["n_missing"], off["n_checkpoints"]) == (1, 2, 3)
    nothing = cell(mean, train_dataset="mnli", eval_dataset="mnli_matched", eval_format="instruct")
    assert nothing["delta_mean"] == pytest.approx(0.15) and nothing["n"] == 1
    assert list(mean.columns[:8]) == ["train_dataset", "train_format", "lr", "eval_dataset", "eval_format",
                                      "shots", "delta_mean", "n"]


def test_forgetting_is_off_task_with_base_and_flags(analysis):
    forgetting = analysis.forgetting
    mnli_rows = forgetting[forgetting["train_dataset"] == "mnli"]
    assert set(mnli_rows["eval_dataset"]) == {"paws", "xsum"}  # mnli_matched is mnli's own eval set
    xsum_rows = forgetting[forgetting["train_dataset"] == "xsum"]
    assert set(xsum_rows["eval_dataset"]) == {"mnli_matched"}
    paws_100 = cell(forgetting, checkpoint="100", train_dataset="mnli", eval_dataset="paws")
    assert paws_100["forgetting"] == pytest.approx(-0.05) and paws_100["base"] == 0.50
    assert paws_100["base_at_chance"] and paws_100["flagged"] and not paws_100["label_artifact"]
    paws_200 = cell(forgetting, checkpoint="200", train_dataset="mnli", eval_dataset="paws")
    assert paws_200["forgetting"] == pytest.approx(-0.10) and not paws_200["flagged"]
    paws_main = cell(forgetting, checkpoint="main", train_dataset="mnli", eval_dataset="paws")
    assert paws_main["forgetting"] == 0.0  # Δ = 0: nothing lost
    xsum_200 = cell(forgetting, checkpoint="200", train_dataset="mnli", eval_dataset="xsum")
    assert math.isnan(xsum_200["forgetting"]) and not xsum_200["flagged"]  # unknown chance: not flagged
    below_chance = cell(forgetting, checkpoint="100", train_dataset="xsum", eval_dataset="mnli_matched")
    assert below_chance["base"] == 0.30 and below_chance["base_at_chance"]  # 0.30 <= 1/3 + 0.02
    assert analysis.counts["forgetting_flagged_base_at_chance"] == 2
    assert analysis.counts["forgetting_negative"] == 4  # paws 100, 200; xsum 100; xsum->mnli_matched 200


def test_label_artifact_flag():
    records = [rec("base", "100", "qqp", 1.0, mode="faithful", source="study"),
               rec("finetuned", "100", "qqp", 0.6, train="paws", lr=1e-5, mode="faithful", source="study"),
               rec("base", "100", "qqp", 0.5, mode="faithful", source="study_official", metric="acc"),
               rec("finetuned", "100", "qqp", 0.4, train="tulu", lr=1e-5, mode="faithful", source="study_official",
                   metric="acc"),
               rec("base", "100", "stsb", 0.9), rec("finetuned", "100", "stsb", 0.5, train="paws", lr=1e-5)]
    forgetting = analyze(records).forgetting
    flags = {(r.source, r.eval_dataset, r.mode): r.label_artifact for r in forgetting.itertuples()}
    assert flags == {("study", "qqp", "faithful"): True, ("study_official", "qqp", "faithful"): False,
                     ("ptft", "stsb", "fixed"): False}
    study = cell(forgetting, source="study")
    assert study["delta"] == pytest.approx(-0.4) and study["flagged"]


def test_format_sensitivity_for_finetuned_and_base(analysis):
    fmt = analysis.format_sensitivity
    base = cell(fmt, model_kind="base", checkpoint="100", eval_dataset="mnli_matched")
    assert base["spread"] == pytest.approx(0.05) and base["n_formats"] == 3
    assert (base["value_default"], base["value_instruct"], base["value_io"]) == (0.30, 0.35, 0.32)
    ft = cell(fmt, model_kind="finetuned", checkpoint="100", train_dataset="mnli", eval_dataset="mnli_matched")
    assert ft["spread"] == pytest.approx(0.10)
    assert (ft["n_formats"], ft["n_formats_missing"], ft["formats_missing"]) == (2, 1, "io")
    single = cell(fmt, model_kind="finetuned", checkpoint="200", train_dataset="mnli", eval_dataset="paws")
    assert math.isnan(single["spread"]) and single["n_formats"] == 1


def test_groups_means_n_and_slopes(analysis):
    groups = analysis.groups
    default = groups[(groups["eval_format"] == "default") & (groups["train_format"] == "default")]
    ft = default[default["group"] == "learned_in_ft"].set_index("checkpoint")
    assert list(ft.index) == ["100", "200", "main"]
    assert ft.loc["100", "delta_mean"] == pytest.approx(0.25) and ft.loc["100", "n"] == 2
    assert ft.loc["200", "delta_mean"] == pytest.approx(0.275) and ft.loc["200", "n"] == 2
    assert ft.loc["main", "delta_mean"] == pytest.approx(0.40) and ft.loc["main", "n"] == 1
    assert math.isnan(ft.loc["100", "slope"])
    assert ft.loc["200", "slope"] == pytest.approx(0.025 / 100 * 1e5)
    assert ft.loc["main", "slope"] == pytest.approx(0.125 / (MAIN_STEP - 200) * 1e5)
    c2g = default[default["group"] == "class_to_gen"].set_index("checkpoint")
    assert c2g.loc["100", "delta_mean"] == pytest.approx(-0.05)
    assert c2g.loc["200", "n"] == 0 and math.isnan(c2g.loc["200", "delta_mean"])
    assert math.isnan(c2g.loc["200", "slope"])
    pt = default[default["group"] == "learned_in_pt"]
    assert (pt["n"] == 0).all() and len(pt) == 3  # no tulu pairs: present and counted as empty
    instruct = groups[groups["eval_format"] == "instruct"]
    assert cell(instruct, group="learned_in_ft", checkpoint="100")["delta_mean"] == pytest.approx(0.15)


def test_slope_and_checkpoint_order():
    assert slope(0.1, 0.3, 1000, 21000) == pytest.approx(1.0)
    assert math.isnan(slope(float("nan"), 0.3, 0, 10)) and math.isnan(slope(0.1, 0.2, 5, 5))
    assert plot_step(None) == 750000 and plot_step(None, 42) == 42 and plot_step(18000) == 18000
    order = checkpoint_order([("main", None), ("18000", 18000), ("1000", 1000), ("738000", 738000)])
    assert order == ["1000", "18000", "738000", "main"]


def test_duplicate_records_are_a_clear_error():
    records = known_records() + [ft_mnli("200", "paws", 0.55)]
    with pytest.raises(DuplicateRecordError) as error:
        analyze(records)
    message = str(error.value)
    assert "checkpoint='200'" in message and "eval_dataset='paws'" in message and "train_dataset='mnli'" in message


def test_chance_helper_degrades_for_unknown_names():
    assert taskinfo.chance_level("no_such_dataset_xyz") is None
    assert not taskinfo.at_chance(0.3, None, 0.02)
    assert not taskinfo.at_chance(float("nan"), 0.5, 0.02)
    assert taskinfo.at_chance(0.45, 0.5, 0.02) and not taskinfo.at_chance(0.6, 0.5, 0.02)
    assert taskinfo.in_domain("mnli", "mnli_mismatched") and not taskinfo.in_domain("tulu", "boolq")
    assert taskinfo.in_domain("custom", "custom") and not taskinfo.in_domain("custom", "other")


def test_taskinfo_reads_the_registry_and_falls_back_outside_it():
    # registry facts (ptft.tasks): mnli's own evals, chance levels, hidden faithful labels
    assert taskinfo.in_domain("mnli", "mnli_matched") and not taskinfo.in_domain("mnli", "mnli")
    assert not taskinfo.in_domain("mnli", "rte") and taskinfo.in_domain("cnn", "cnn")
    assert taskinfo.chance_level("mnli_matched") == pytest.approx(1 / 3) and taskinfo.chance_level("xsum") is None
    assert taskinfo.label_artifact("qqp", "faithful", "study") and taskinfo.label_artifact("stsb", "faithful", "ptft")
    assert not taskinfo.label_artifact("qqp", "fixed", "ptft") and not taskinfo.label_artifact("paws", "faithful", "ptft")
    assert not taskinfo.label_artifact("qqp", "faithful", "study_official")  # labelled splits in that harness
    # names the registry does not know, or knows only as eval sets: the same name only, never flagged
    assert taskinfo.in_domain("boolq", "boolq") and not taskinfo.in_domain("boolq", "paws")
    assert taskinfo.in_domain(None, None) is True and not taskinfo.in_domain(None, "paws")
    assert taskinfo.chance_level(None) is None and not taskinfo.label_artifact("custom", "faithful", "ptft")


def test_empty_and_base_only_tables_do_not_crash():
    empty = analyze([])
    assert empty.counts["records"] == 0 and empty.transfer.empty and empty.groups.empty
    base_only = analyze([rec("base", "100", "paws", 0.5)])
    assert base_only.counts["base_records_without_finetuned_partner"] == 1
