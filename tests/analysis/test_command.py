"""`ptft analyze` (ptft/cli/analyze.py over evals/analysis/pipeline.py) end to end: study CSVs in, a
ptft grid's storage in (with W&B offline), bad input out."""

from __future__ import annotations

import pandas as pd
import pytest

from evals.analysis.pipeline import AnalysisInputError, AnalyzeConfig, WandbOptions, run_analysis
from evals.results import write_records
from ptft.cli.analyze import main as analyze_main
from ptft.core.wandb_settings import WandbModeError
from tests.analysis.conftest import ft_mnli, known_records
from tests.analysis.test_study_import import MAIN_CSV, OFFICIAL_CSV


def write_grid(storage, records) -> None:
    """One results.jsonl per evaluated model, as the evaluator writes them."""
    by_model: dict[tuple, list] = {}
    for r in records:
        by_model.setdefault((r.model_kind, r.checkpoint, r.train_dataset), []).append(r)
    for i, model_records in enumerate(by_model.values()):
        write_records(str(storage / "evals" / f"model{i}" / "results.jsonl"), model_records)
    (storage / "evals" / "still-running").mkdir()  # no results yet: skipped, not an error


def test_study_csvs(tmp_path, capsys):
    main, official = tmp_path / "perf.csv", tmp_path / "official.csv"
    main.write_text(MAIN_CSV)
    official.write_text(OFFICIAL_CSV)
    out = tmp_path / "out"
    status = analyze_main(["--study-csv", str(main), "--study-official-csv", str(official), "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "skipped 2 rows with legacy model id" in printed and "report:" in printed
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 20 and set(results["source"]) == {"study", "study_official"}
    html = (out / "report.html").read_text()
    assert "skipped 1 rows with unrecognised model id" in html


def test_storage_grid_with_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    storage = tmp_path / "grid"
    write_grid(storage, known_records())
    out = tmp_path / "out"
    status = analyze_main(["--storage", str(storage), "--out", str(out), "--main-step", "1000",
                           "--wandb-project", "ptft-test", "--wandb-mode", "auto"])  # no key: offline
    assert status == 0
    transfer = pd.read_csv(out / "transfer.csv")
    assert len(transfer) == 16
    assert list(out.glob("wandb/offline-run-*/files/media/table/transfer_table_*.table.json"))


def test_duplicates_and_missing_inputs_fail_clearly(tmp_path, capsys):
    storage = tmp_path / "grid"
    write_grid(storage, known_records() + [ft_mnli("100", "paws", 0.99)])
    assert analyze_main(["--storage", str(storage), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert "duplicated result key" in error and "eval_dataset='paws'" in error
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as exit_:  # no input at all: a usage error
        analyze_main(["--out", str(tmp_path / "out")])
    assert exit_.value.code == 2 and "give storage and/or study_csv" in capsys.readouterr().err
    assert analyze_main(["--storage", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 1
    assert "no result records" in capsys.readouterr().err


def test_run_analysis_is_a_function(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    storage = tmp_path / "grid"
    write_grid(storage, known_records())
    outcome = run_analysis(AnalyzeConfig(storage=str(storage), out=str(tmp_path / "out"), main_step=1000))
    assert outcome.records == len(known_records()) and outcome.wandb_run_dir is None
    assert outcome.report == str(tmp_path / "out" / "report.html") and "transfer.csv" in outcome.written
    (note,) = outcome.notes
    assert note.startswith(f"{storage}: ") and note.endswith(f"-> {len(known_records())} records")
    with pytest.raises(AnalysisInputError, match="no result records"):
        run_analysis(AnalyzeConfig(storage=str(tmp_path / "empty"), out=str(tmp_path / "out2")))
    online = AnalyzeConfig(storage=str(storage), out=str(tmp_path / "out3"),
                           wandb=WandbOptions(project="p", mode="online"))
    with pytest.raises(WandbModeError, match="WANDB_API_KEY"):  # before anything is read or written
        run_analysis(online)
    assert not (tmp_path / "out3").exists()
