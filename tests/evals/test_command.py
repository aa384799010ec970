"""`ptft eval` (ptft/cli/eval.py) end to end on the mini data, and its errors."""

from __future__ import annotations

import os

import pytest

from evals.results import read_records
from ptft.cli.eval import main as eval_main


def test_cli_end_to_end(tiny_model_dir, tmp_path, capsys):
    out = str(tmp_path / "out")
    argv = ["--model", tiny_model_dir, "--tasks", "mnli_matched,xsum", "--formats", "default,instruct",
            "--shots", "1", "--mode", "fixed", "--out", out, "--batch-size", "4", "--limit", "4",
            "--data-source", "mini", "--max-new-tokens", "6", "--bootstrap-resamples", "100", "--no-progress"]
    assert eval_main(argv) == 0
    records = read_records(os.path.join(out, "results.jsonl"))
    assert sorted((r.eval_dataset, r.eval_format) for r in records) == [
        ("mnli_matched", "default"), ("mnli_matched", "instruct"), ("xsum", "default"), ("xsum", "instruct")]
    assert all(r.n == 4 and r.shots == 1 for r in records)
    # named by task, format and shots, then the job id
    assert sorted(os.listdir(os.path.join(out, "predictions"))) == sorted(
        f"{r.eval_dataset}.{r.eval_format}.{r.shots}shot.{r.job_id}.jsonl" for r in records)
    assert "wrote 4 records" in capsys.readouterr().out
    assert eval_main(argv) == 0  # cached: same records, nothing recomputed
    assert [r.to_dict() for r in read_records(os.path.join(out, "results.jsonl"))] == [
        r.to_dict() for r in records]


def test_cli_unknown_task(tiny_model_dir, tmp_path, capsys):
    code = eval_main(["--model", tiny_model_dir, "--tasks", "xsumm", "--out", str(tmp_path), "--data-source", "mini"])
    assert code == 2
    assert "unknown dataset 'xsumm' (did you mean 'xsum'?)" in capsys.readouterr().err


def test_cli_format_the_task_lacks(tiny_model_dir, tmp_path, capsys):
    code = eval_main(["--model", tiny_model_dir, "--tasks", "arc_easy", "--formats", "io", "--out",
                      str(tmp_path), "--data-source", "mini"])
    assert code == 2
    assert "arc_easy: format 'io' is not supported" in capsys.readouterr().err


def test_cli_model_that_does_not_load(tmp_path, capsys):
    code = eval_main(["--model", str(tmp_path / "missing"), "--revision", "step1000-tokens4B", "--tasks",
                      "mnli_matched", "--out", str(tmp_path), "--data-source", "mini", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "missing" in err and "step1000-tokens4B" in err


def test_cli_identity_and_config_file(tiny_model_dir, tmp_path):
    """Identity flags land in every record; a config file gives the same fields (flags override it)."""
    out = str(tmp_path / "out")
    config = tmp_path / "eval.yaml"
    config.write_text(f"model: {tiny_model_dir}\ntasks: [mnli_matched]\nshots: [0]\nlimit: 2\nbatch_size: 2\n"
                      f"data_source: mini\nbootstrap_resamples: 10\nout: {out}\nprogress: false\n")
    argv = ["--config", str(config), "--model-kind", "finetuned", "--train-dataset", "mnli", "--lr", "1e-5",
            "--checkpoint", "1000", "--checkpoint-step", "1000", "--set", "limit=3"]
    assert eval_main(argv) == 0
    (record,) = read_records(os.path.join(out, "results.jsonl"))
    assert (record.model_kind, record.train_dataset, record.lr) == ("finetuned", "mnli", 1e-5)
    assert (record.checkpoint, record.checkpoint_step, record.base_model, record.n) == ("1000", 1000, tiny_model_dir, 3)


def test_cli_bad_identity_and_bad_values(tiny_model_dir, tmp_path, capsys):
    base = ["--model", tiny_model_dir, "--tasks", "mnli_matched", "--out", str(tmp_path), "--data-source", "mini"]
    assert eval_main([*base, "--model-kind", "finetuned"]) == 2  # fine-tuned needs train_dataset
    assert "needs train_dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        eval_main([*base, "--batch-size", "0", "--shots", "four"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "batch_size (--batch-size): Input should be greater than or equal to 1" in err
    assert "shots[0] (--shots): Input should be a valid integer" in err
