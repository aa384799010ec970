"""ptft/cli/flags.py: flags generated from pydantic models, one precedence rule, pydantic's errors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from evals.config import EvalConfig
from ptft.cli.flags import CommandLine, model_from_dataclass
from trainers.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


class Inner(BaseModel):
    """Reporting"""

    model_config = ConfigDict(extra="forbid")

    project: str | None = Field(None, description="Where runs go.")
    mode: Literal["auto", "offline"] = Field("auto", description="How runs go.")


class Who(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(None, description="A label.")
    step: int | None = Field(None, ge=0, description="A step.")


def make_model(batch_default: int) -> type[BaseModel]:
    """The same command config with another default, declared in one place: the model."""

    class Command(BaseModel):
        model_config = ConfigDict(extra="forbid")

        name: str = Field(..., description="What to call it.")
        batch_size: int = Field(batch_default, ge=1, description="Rows per step.")
        max_new_tokens: int = Field(60, ge=1, description="Tokens to generate.")
        ratio: float = Field(0.5, gt=0, le=1, description="A fraction.")
        kind: Literal["fast", "slow"] = Field("fast", description="Which way.")
        stage: Literal[0, 1, 2, 3] = Field(3, description="An int choice.")
        progress: bool = Field(True, description="Show progress.")
        tasks: list[str] = Field(default_factory=lambda: ["a"], description="Datasets.")
        shots: list[int] = Field(default_factory=lambda: [4], description="Shot counts.")
        limit: int | None = Field(None, ge=1, description="At most this many.")
        wandb: Inner = Field(default_factory=Inner, description="W&B")
        who: Who = Field(default_factory=Who)

    return Command


Command = make_model(16)


def cli(model: type[BaseModel] = Command) -> CommandLine:
    return CommandLine("ptft test", model, flatten=("who",))


def help_text(command_line: CommandLine) -> str:
    return re.sub(r"\s+", " ", command_line.parser.format_help())


def test_names_help_and_defaults_come_from_the_model():
    text = help_text(cli())
    assert "--max-new-tokens N Tokens to generate. (default: 60)" in text
    assert "--batch-size N Rows per step. (default: 16)" in text
    assert "--name NAME What to call it. (required)" in text
    assert "--tasks A,B,... Datasets. Comma-separated. (default: a)" in text
    assert "--kind {fast,slow}" in text and "--stage {0,1,2,3}" in text
    assert "--progress, --no-progress Show progress. (default: on)" in text
    assert "W&B: --wandb-project PROJECT Where runs go." in text  # a nested model: a prefixed group
    assert "--checkpoint CHECKPOINT" in text and "--who-checkpoint" not in text  # flattened
    config, _ = cli().parse(["--name", "x"])
    assert config == Command(name="x") and config.batch_size == 16

    # Change the default on the model, nowhere else: help and parsed config follow.
    changed = cli(make_model(32))
    assert "--batch-size N Rows per step. (default: 32)" in help_text(changed)
    assert changed.parse(["--name", "x"])[0].batch_size == 32


def test_real_configs_generate_their_defaults():
    text = help_text(CommandLine("ptft eval", EvalConfig))
    for name in EvalConfig.model_fields:
        assert f"--{name.replace('_', '-')}" in text
    assert f"(default: {EvalConfig.model_fields['max_new_tokens'].default})" in text
    train, _ = CommandLine("t", TrainConfig).parse(["--zero-stage", "2", "--adam-betas", "0.8,0.9", "--packing",
                                                    "--grad-clip", "null"])
    assert train == TrainConfig(zero_stage=2, adam_betas=(0.8, 0.9), packing=True, grad_clip=None)


def test_dataclass_fields_become_options():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Identity:
        kind: Literal["base", "finetuned"] = "base"
        label: str  # required on the dataclass, optional on the command
        step: int | None = dataclasses.field(default=None, metadata={"description": "A step."})

    options = model_from_dataclass(Identity, optional=("label",))
    text = help_text(CommandLine("t", options))
    assert "--kind {base,finetuned}" in text and "--step N A step. (default: null)" in text
    assert "--label LABEL (default: null)" in text
    parsed, _ = CommandLine("t", options).parse(["--step", "3", "--set", "label=100"])
    assert Identity(**parsed.model_dump()) == Identity(label="100", step=3)


def test_precedence_defaults_then_config_file_then_flags_then_set(tmp_path: Path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("name: from-file\nbatch_size: 2\nmax_new_tokens: 3\nratio: 0.25\n"
                           "wandb:\n  project: file-project\n")
    config, _ = cli().parse(["--config", str(config_file), "--batch-size", "20", "--max-new-tokens", "30",
                             "--set", "max_new_tokens=300", "--set", "wandb.mode=offline",
                             "--set", "ratio=0.75", "--set", "ratio=1"])
    assert config.name == "from-file"  # file only
    assert config.batch_size == 20  # flag over file
    assert config.max_new_tokens == 300  # --set over flag
    assert config.ratio == 1.0  # the later --set wins
    assert config.wandb == Inner(project="file-project", mode="offline")  # nested: merged key by key
    assert config.kind == "fast" and config.limit is None  # untouched: the model's defaults


def test_choices_lists_bools_and_null():
    config, _ = cli().parse(["--name", "x", "--kind", "slow", "--stage", "0", "--no-progress",
                             "--tasks", "mnli, xsum,", "--shots", "0,4", "--limit", "5"])
    assert (config.kind, config.stage, config.progress) == ("slow", 0, False)
    assert config.tasks == ["mnli", "xsum"] and config.shots == [0, 4] and config.limit == 5
    config, _ = cli().parse(["--name", "x", "--limit", "5", "--set", "limit=null", "--set", "shots=[1, 2]"])
    assert config.limit is None and config.shots == [1, 2]


def test_a_number_for_a_text_field_stays_text(tmp_path: Path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("name: 1000\n")
    config, _ = cli().parse(["--config", str(config_file), "--set", "who.checkpoint=0100", "--step", "7"])
    assert config.name == "1000" and config.who == Who(checkpoint="0100", step=7)


def test_a_bad_choice_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli().parse(["--name", "x", "--kind", "medium"])
    assert exit_.value.code == 2
    assert "--kind: invalid choice: 'medium' (choose from" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "expected"), [
    (["--name", "x", "--batch-size", "0"], "batch_size (--batch-size): Input should be greater than or equal to 1"),
    (["--name", "x", "--shots", "1,two"], "shots[1] (--shots): Input should be a valid integer"),
    (["--name", "x", "--ratio", "2"], "ratio (--ratio): Input should be less than or equal to 1"),
    (["--batch-size", "4"], "name (--name): required field is missing"),
    (["--name", "x", "--set", "batch_sise=4"], "batch_sise: unknown key (did you mean 'batch_size'?)"),
    (["--name", "x", "--set", "wandb.mode=online"], "wandb.mode (--wandb-mode): Input should be 'auto' or 'offline'"),
    (["--name", "x", "--set", "no-equals-sign"], "--set 'no-equals-sign': expected dotted.key=value"),
    (["--name", "x", "--step", "-1"], "who.step (--step): Input should be greater than or equal to 0"),
])
def test_a_bad_value_exits_2_naming_the_field(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_:
        cli().parse(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"ptft test: error: {expected}" in captured.err


def test_one_line_per_bad_field(capsys):
    with pytest.raises(SystemExit):
        cli().parse(["--batch-size", "0", "--ratio", "0"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("ptft test: error: ") for line in lines)
    assert {line.split(": ")[2].split(" ")[0] for line in lines} == {"name", "batch_size", "ratio"}


def test_a_bad_config_file_is_a_usage_error(tmp_path: Path, capsys):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("- a list\n")
    for path in (config_file, tmp_path / "missing.yaml"):
        with pytest.raises(SystemExit) as exit_:
            cli().parse(["--config", str(path)])
        assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "the top level must be a mapping" in err and "missing.yaml: file not found" in err


def test_set_is_declared_in_one_place():
    declared = [str(p.relative_to(REPO)) for d in ("ptft", "evals", "trainers", "ray_jobs")
                for p in (REPO / d).rglob("*.py") if re.search(r"add_argument\(\s*\"--set\"", p.read_text(encoding="utf-8"))]
    assert declared == ["ptft/cli/flags.py"]
