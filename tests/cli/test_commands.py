"""The `ptft` commands: one dispatcher, lazy imports, generated options, spec commands taking CONFIG + --set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ptft.cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = REPO / "configs" / "smoke.yaml"


@pytest.fixture
def smoke(tmp_path) -> str:
    """configs/smoke.yaml over stand-in checkpoint folders (the real ones come from `ptft demo`)."""
    text = SMOKE_CONFIG.read_text().replace("../runs/demo/pretrain", str(tmp_path / "pretrain"))
    for step in (50, 600):
        (tmp_path / "pretrain" / f"step{step}").mkdir(parents=True)
    path = tmp_path / "smoke.yaml"
    path.write_text(text.replace("storage: ../runs/smoke", f"storage: {tmp_path / 'runs-smoke'}"))
    return str(path)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_generated_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ptft {command}") and "--set KEY=VALUE" in out
    assert "(default: " in out or command == "status"  # status has no options of its own


def test_plan_imports_neither_ray_nor_torch(smoke):
    code = ("import sys, contextlib, io\nfrom ptft.cli.main import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['plan', {smoke!r}, '--json']) == 0\n"
            "print(sorted(m for m in ('ray', 'torch', 'transformers', 'deepspeed') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_plan_options_are_generated_and_checked_by_pydantic(smoke, capsys):
    assert main(["plan", smoke, "--json", "--gpu", "a100", "--mfu", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["estimate"]["gpu"] == "a100"
    with pytest.raises(SystemExit) as exit_:
        main(["plan", smoke, "--mfu", "0"])
    assert exit_.value.code == 2
    assert "ptft plan: error: mfu (--mfu): Input should be greater than 0" in capsys.readouterr().err


def test_spec_commands_take_set_overrides(smoke, tmp_path, capsys):
    storage = str(tmp_path / "grid")
    assert main(["status", smoke, "--set", f"storage={storage}"]) == 0
    assert storage in capsys.readouterr().out.replace("\n", "")
    assert main(["run", smoke, "--dry-run", "--set", f"storage={storage}", "--set", "train.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "nothing was launched" in out and "trials" in out
    assert main(["status", smoke, "--set", "train.epoch=2"]) == 2  # the spec's own error, unchanged
    assert "train.epoch: unknown key (did you mean 'epochs'?)" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate"])
    assert exit_.value.code == 2
    assert "invalid choice: 'evaluate'" in capsys.readouterr().err


def test_plan_says_what_a_rejection_sampling_stage_samples(smoke, capsys):
    recipe = ('recipes={"r": [{"kind": "rejection_sampling", "dataset": "tulu", "samples": 3, "prompts": 20, '
              '"threshold": 0.5, "reward": {"model": "org/rm"}}]}')
    assert main(["plan", smoke, "--set", recipe]) == 0
    out = capsys.readouterr().out
    assert "rejection sampling    2 cell(s) on tulu: 3 samples x 20 prompts, <= 64 new tokens each, reward org/rm " \
           "(keep >= 0.5)" in out
