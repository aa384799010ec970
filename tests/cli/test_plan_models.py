"""`ptft plan` and `ptft status` on a spec of several models: each model's checkpoints in its own family's
naming, its cells and base folders named after it; a missing folder names the model's entry."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ptft.cli.main import main
from ptft.cli.plan_report import _unresolved
from ptft.study.plan import build_plan
from ptft.study.spec import load_spec

REPO = Path(__file__).resolve().parents[2]


def _spec(tmp_path: Path, models: list[dict]) -> str:
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw.pop("model")
    raw["models"] = models
    raw["train"]["datasets"] = ["mnli"]
    raw["train"]["formats"] = ["default"]
    raw["data"]["source"] = "hub"  # nothing read: planning stays offline
    raw["storage"] = str(tmp_path / "grid")
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


HUB_MODELS = [
    {"id": "allenai/OLMo-2-0425-1B", "name": "olmo2", "num_params": 1_480_000_000,
     "checkpoints": [1000, {"step": 500, "stage": 2, "ingredient": 1}]},
    {"id": "EleutherAI/pythia-160m", "name": "pythia", "num_params": 162_000_000, "checkpoints": [143000]},
    {"id": "org/custom", "name": "custom", "num_params": 1_000_000, "checkpoints": [7],
     "revision_pattern": "ckpt_{step:03d}"},
]


def test_plan_shows_each_models_checkpoints_in_its_familys_naming(tmp_path, capsys):
    path = _spec(tmp_path, HUB_MODELS)
    assert main(["plan", path]) == 0
    out = capsys.readouterr().out
    assert "models olmo2, pythia, custom" in out
    assert "olmo2-1000" in out and "pythia-143000" in out  # the checkpoint column names the model
    assert "ckpt_007" in out and "step143000" in out  # the revision column (rich wraps the longer ones)
    plan = build_plan(load_spec(path))
    shapes = {cell.checkpoint_label: _unresolved(plan.spec.model_named(cell.model_name).checkpoint_naming(),
                                                 cell.checkpoint) for cell in plan.cells}
    assert shapes == {"olmo2-1000": "stage1-step1000-tokens*B (resolved at run time)",
                      "olmo2-stage2-ingredient1-step500": "stage2-ingredient1-step500-tokens*B (resolved at run time)",
                      "pythia-143000": "step143000 (resolved at run time)",
                      "custom-7": "ckpt_007 (resolved at run time)"}

    assert main(["plan", path, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {c["model_name"] for c in plan["cells"]} == {"olmo2", "pythia", "custom"}
    assert {j["model"] for j in plan["eval_jobs"] if j["model_kind"] == "base"} == {
        "base:olmo2-1000", "base:olmo2-stage2-ingredient1-step500", "base:pythia-143000", "base:custom-7"}

    assert main(["status", path]) == 0
    assert "pythia-143000" in capsys.readouterr().out


def test_a_missing_checkpoint_folder_names_the_models_entry(tmp_path, capsys):
    present = tmp_path / "ck" / "a"
    present.mkdir(parents=True)
    models = [{"id": str(present), "name": "a", "checkpoints": [{"path": str(present), "step": 1}]},
              {"id": str(tmp_path / "ck" / "b"), "name": "b",
               "checkpoints": [{"path": str(tmp_path / "ck" / "b"), "step": 2}]}]
    path = _spec(tmp_path, models)
    assert main(["run", path, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "models[1].checkpoints[0]: checkpoint directory" in err and "does not exist" in err
