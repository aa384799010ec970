"""The output folder: CSVs with the known numbers, PNGs, and report.html with its table of contents."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from evals.analysis import analyze, read_grid_records, write_outputs
from evals.analysis.report import SECTIONS
from evals.results import write_records
from ptft.core import storage
from ptft.core.layout import GridLayout, base_model_key, trial_model_key
from tests.analysis.conftest import MAIN_STEP, known_records

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis_out")
    analysis = analyze(known_records(), main_step=MAIN_STEP, notes=["hand-made grid"], title="known grid")
    return out, write_outputs(analysis, str(out))


def test_every_output_exists(outputs):
    out, written = outputs
    for name in ("results.csv", "transfer.csv", "transfer_mean.csv", "forgetting.csv", "format_sensitivity.csv",
                 "groups.csv", "curves.csv", "report.html"):
        assert (out / name).is_file(), name
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "transfer_mean_ptft_fixed.png" in pngs and "forgetting_ptft_fixed.png" in pngs
    assert {"transfer_ptft_fixed_ckpt100.png", "transfer_ptft_fixed_ckpt200.png", "transfer_ptft_fixed_ckptmain.png"} <= set(pngs)
    assert {"curves_ptft_fixed_mnli_matched.png", "curves_ptft_fixed_paws.png", "curves_ptft_fixed_xsum.png"} <= set(pngs)
    assert any(p.startswith("groups_fixed_4shot_default_default") for p in pngs)
    assert all((out / p).read_bytes().startswith(PNG_MAGIC) for p in pngs)
    for png in pngs:  # a vector version beside every PNG
        assert (out / png).with_suffix(".pdf").read_bytes().startswith(b"%PDF"), png
    assert (out / "method_comparison.csv").is_file()
    assert set(written) == {p.name for p in out.iterdir() if not p.name.startswith(".")}


def test_csvs_hold_the_known_numbers(outputs):
    out, _ = outputs
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 23
    transfer = pd.read_csv(out / "transfer.csv")
    assert list(transfer.columns[:11]) == ["checkpoint", "train_dataset", "train_format", "lr", "eval_dataset",
                                           "eval_format", "shots", "base", "finetuned", "delta", "rel_delta"]
    row = transfer[(transfer["checkpoint"] == "100") & (transfer["train_dataset"] == "mnli")
                   & (transfer["eval_dataset"] == "mnli_matched") & (transfer["eval_format"] == "default")]
    assert row["delta"].iloc[0] == pytest.approx(0.30) and row["rel_delta"].iloc[0] == pytest.approx(100.0)
    assert transfer["delta"].isna().sum() == 4 and len(transfer) == 16  # NaN rows kept, not dropped
    mean = pd.read_csv(out / "transfer_mean.csv")
    in_domain = mean[(mean["train_dataset"] == "mnli") & (mean["eval_dataset"] == "mnli_matched")
                     & (mean["eval_format"] == "default")]
    assert in_domain["delta_mean"].iloc[0] == pytest.approx(0.366667, abs=1e-6) and in_domain["n"].iloc[0] == 3
    groups = pd.read_csv(out / "groups.csv")
    assert list(groups.columns[:5]) == ["group", "checkpoint", "delta_mean", "n", "slope"]
    slope = groups[(groups["group"] == "learned_in_ft") & (groups["checkpoint"] == "200")
                   & (groups["eval_format"] == "default")]["slope"].iloc[0]
    assert slope == pytest.approx(25.0)
    forgetting = pd.read_csv(out / "forgetting.csv")
    assert {"base", "forgetting", "base_at_chance", "label_artifact", "flagged"} <= set(forgetting.columns)
    fmt = pd.read_csv(out / "format_sensitivity.csv")
    base = fmt[(fmt["model_kind"] == "base") & (fmt["checkpoint"].astype(str) == "100") & (fmt["eval_dataset"] == "mnli_matched")]
    assert base["spread"].iloc[0] == pytest.approx(0.05)


def test_report_has_toc_sections_counts_and_images(outputs):
    out, _ = outputs
    html = (out / "report.html").read_text()
    assert '<nav id="toc">' in html
    for anchor, _title in SECTIONS:
        shown = anchor not in ("methods", "stages")  # one method, no recipes: no such sections
        assert (f'href="#{anchor}"' in html) == shown and (f'<section id="{anchor}">' in html) == shown, anchor
    assert html.index('<section id="findings">') < html.index('<section id="appendix">')
    assert html.index('<section id="appendix">') < html.index("transfer_missing_base")  # bookkeeping at the end
    assert "data:image/png;base64," in html and "hand-made grid" in html
    assert re.search(r'<td>transfer_missing_both</td><td data-v="2.0">2</td>', html)


def test_read_grid_records_reads_every_eval_folder_of_the_layout(tmp_path):
    layout = GridLayout(str(tmp_path))
    records = known_records()
    base, trial = layout.evals(base_model_key("100")), layout.evals(trial_model_key("t1"))
    for output, part in ((base, records[:10]), (trial, records[10:])):
        storage.makedirs(output.root)
        write_records(output.results, part)
    storage.makedirs(layout.evals("still-running").root)  # a model folder without results yet: skipped
    read, files = read_grid_records(str(tmp_path))
    assert files == [base.results, trial.results]
    assert [r.key() for r in read] == [r.key() for r in records]
    assert read_grid_records(str(tmp_path / "empty")) == ([], [])
