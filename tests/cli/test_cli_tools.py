"""The CLI's help and its small tools: --version, examples and help for every flag, `ptft init` (a spec
`load_spec` accepts), `ptft report`, `ptft env`, `ptft plan`'s warnings, `ptft run --help`."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import webbrowser
from pathlib import Path

import pytest
import yaml

from ptft.cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]
# `ptft tasks` is its own helper's; it is asked to add an examples epilog too.
NO_EPILOG_YET: set[str] = set()


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_version_names_the_package_version_and_commit(capsys):
    from importlib import metadata

    assert main(["--version"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"ptft {metadata.version('ptft')}")
    if (REPO / ".git").exists():  # a checkout: its commit, as git names it
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        assert f"(git {head}" in line


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - NO_EPILOG_YET))
def test_every_help_has_examples_of_itself(command, capsys):
    out = _help(command, capsys)
    examples = out.split("examples:\n", 1)[1]
    assert f"  ptft {command}" in examples, examples


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - NO_EPILOG_YET))
def test_every_flag_says_what_it_does(command):
    parser = importlib.import_module(COMMANDS[command][1]).command_line().parser
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or "-h" in action.option_strings:
            continue
        text = (action.help or "").split("(default:")[0].split("(required)")[0].replace("Comma-separated.", "")
        assert text.strip(), f"ptft {command} {action.option_strings[0]} has no help"


def test_run_help_names_itself_and_has_no_noop_flag(capsys):
    out = _help("run", capsys)
    assert out.startswith("usage: ptft run ") and "ray_jobs" not in out
    assert "--resume" not in out and "--verbose" in out
    assert main(["run", "--resume", "--dry-run", "missing.yaml"]) == 2  # still accepted (ptft submit passes it)


def test_init_scaffolds_a_spec_load_spec_accepts(tmp_path, capsys):
    from ptft.study.plan import build_plan
    from ptft.study.spec import load_spec

    out = tmp_path / "olmo.yaml"
    args = ["init", "allenai/OLMo-1B-hf", "--steps", "1000,2000", "--datasets", "mnli,xsum",
            "--eval-datasets", "mnli_matched,xsum", "--out", str(out)]
    assert main(args) == 0
    assert f"ptft plan {out}" in capsys.readouterr().out
    spec = load_spec(str(out))
    assert spec.name == "OLMo-1B-hf" and spec.model.id == "allenai/OLMo-1B-hf"
    assert [ref.step for ref in spec.model.checkpoint_refs()] == [1000, 2000]
    assert len(build_plan(spec).cells) == 4  # 2 steps x 2 datasets x the default format
    assert out.read_text().startswith(f"# ptft plan {out}\n")
    assert main(args) == 1  # an existing file is kept...
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force", "--name", "olmo-2"]) == 0  # ...unless asked
    assert load_spec(str(out)).name == "olmo-2"


def test_init_prints_the_spec_and_refuses_an_unknown_dataset(capsys):
    assert main(["init", "allenai/OLMo-1B-hf", "--steps", "1000"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["checkpoints"] == [1000]
    with pytest.raises(SystemExit) as exit_:
        main(["init", "allenai/OLMo-1B-hf", "--steps", "1000", "--datasets", "mnlii"])
    assert exit_.value.code == 2
    assert "train.datasets[0]: unknown dataset 'mnlii'" in capsys.readouterr().err


def test_report_prints_the_path_or_says_there_is_none(tmp_path, capsys, monkeypatch):
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no report.html" in err and f"ptft analyze --storage {tmp_path}" in err
    report = tmp_path / "analysis" / "report.html"
    report.parent.mkdir()
    report.write_text("<html></html>")
    assert main(["report", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(report)
    assert main(["report", str(report.parent)]) == 0  # the analysis folder itself (ptft analyze --out)
    assert capsys.readouterr().out.strip() == str(report)
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    assert main(["report", str(tmp_path), "--open"]) == 0
    assert opened == [report.as_uri()]


def test_env_lists_the_versions_a_bug_report_needs(capsys):
    from importlib import metadata

    assert main(["env", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    for name in ("ptft", "python", "platform", "torch", "ray", "deepspeed", "transformers", "peft", "datasets",
                 "wandb"):
        assert found[name], name
    assert found["ray"] == metadata.version("ray") and found["peft"] == metadata.version("peft")
    assert found["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert "cuda" in found["torch"] or "CPU build" in found["torch"]


def test_plan_warns_of_missing_checkpoints_and_the_placeholder_bucket(tmp_path, capsys):
    spec = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    spec["model"] = {"id": str(tmp_path / "ck" / "step600"),
                     "checkpoints": [{"path": str(tmp_path / "ck" / "step50"), "step": 50}]}
    spec["storage"] = "s3://your-bucket/ptft/smoke"
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["plan", str(path), "--json"]) == 0  # the plan is still shown
    captured = capsys.readouterr()
    assert json.loads(captured.out)["cells"]
    assert f"warning: model.checkpoints[0]: checkpoint folder '{tmp_path / 'ck' / 'step50'}' does not exist" \
        in captured.err
    assert "warning: storage: 's3://your-bucket/ptft/smoke' is the example's placeholder bucket" in captured.err
    assert main(["plan", str(path), "--check"]) == 2  # what a launch checks still refuses it
    assert "error: model.checkpoints[0]" in capsys.readouterr().err
