"""The analysis as one function: a results table (a ptft grid's storage, the study's published CSVs) -> a
report folder, and optionally a W&B summary run.

    from evals.analysis.pipeline import AnalyzeConfig, run_analysis
    outcome = run_analysis(AnalyzeConfig(storage="runs/grid", out="runs/grid/analysis"))
    outcome.report  # .../report.html

`ptft analyze` (ptft/cli/analyze.py) builds the config from flags; the grid builds it directly.
Bad input raises: `AnalysisInputError` (nothing to analyze), `DuplicateRecordError` (two records with
one key), `FileNotFoundError` (a CSV that is not there), `WandbModeError` (W&B online without a key,
raised before anything is read). All are `ValueError`s except the missing file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evals.analysis import CHANCE_MARGIN, MAIN_STEP
from ptft.core import storage
from ptft.core.wandb_settings import MODES, WandbSettings, resolve_mode

__all__ = ["AnalysisInputError", "AnalysisOutcome", "AnalyzeConfig", "WandbOptions", "run_analysis"]


class AnalysisInputError(ValueError):
    """The inputs hold nothing to analyze."""


class WandbOptions(BaseModel):
    """W&B (only with a project)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str | None = Field(None, description="Log a summary run to this W&B project.")
    entity: str | None = Field(None, description="W&B entity (team or user).")
    mode: Literal[MODES] = Field("auto", description="auto: online only if WANDB_API_KEY is set.")
    dir: str | None = Field(None, description="Where the run's files go; null: the output folder when local.")
    run_id: str | None = Field(None, description="Run id (a rerun with the same id resumes that run).")
    group: str | None = Field(None, description="Run group.")

    def settings(self, out: str) -> WandbSettings | None:
        """Where the run goes, the mode resolved (raises WandbModeError); None without a project."""
        if not self.project:
            return None
        directory = self.dir or ("" if storage.is_remote(out) else out)
        return WandbSettings(project=self.project, entity=self.entity, mode=resolve_mode(self.mode),
                             dir=directory)


class AnalyzeConfig(BaseModel):
    """What to analyze and where the report goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    storage: str | None = Field(None, description="A ptft grid's storage path: reads every evals/*/results.jsonl.")
    study_csv: str | None = Field(None, description="The study's main table (all_perf_table.csv schema).")
    study_official_csv: str | None = Field(
        None, description="The study's official MC table (official_eval_table.csv schema).")
    out: str = Field(..., description="Output folder (local, s3:// or gs://).")
    main_step: int = Field(MAIN_STEP, description="x position of the final model, whose step is unknown.")
    chance_margin: float = Field(
        CHANCE_MARGIN, ge=0.0, description="Flag forgetting where the base is at most chance + this.")
    title: str | None = Field(None, description="Report title; null: named after the inputs.")
    spec: str | None = Field(None, description="The experiment spec (YAML file) to show in the report's provenance.")
    wandb: WandbOptions = Field(default_factory=WandbOptions, description="W&B (only with --wandb-project)")

    @model_validator(mode="after")
    def _some_input(self) -> AnalyzeConfig:
        if not (self.storage or self.study_csv or self.study_official_csv):
            raise ValueError("give storage and/or study_csv / study_official_csv "
                             "(--storage, --study-csv, --study-official-csv)")
        return self


@dataclass
class AnalysisOutcome:
    """What one analysis did."""

    records: int
    written: dict[str, str]  # file name -> path
    report: str  # path of report.html
    wandb_run_dir: str | None = None
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def load_records(config: AnalyzeConfig):
    """The records of every input, and one note per input (what was read, what was skipped)."""
    from evals.analysis import import_study_table, read_grid_records

    records, notes = [], []
    if config.storage:
        grid_records, files = read_grid_records(config.storage)
        records += grid_records
        notes.append(f"{config.storage}: {len(files)} results.jsonl files -> {len(grid_records)} records")
    for path, official in ((config.study_csv, False), (config.study_official_csv, True)):
        if path:
            report = import_study_table(path, official=official)
            records += report.records
            notes += report.notes()
    return records, notes


def run_analysis(config: AnalyzeConfig, *, spec_yaml: str | None = None) -> AnalysisOutcome:
    """Read the inputs, compute every table, write CSVs, figures and report.html to `config.out`, log to W&B.

    `spec_yaml`: the spec as run (a grid passes its own, `--set` edits included); else `config.spec`'s text.
    """
    from evals.analysis import analyze, write_outputs
    from evals.analysis.provenance import collect_provenance, plan_summary

    wandb_settings = config.wandb.settings(config.out)  # an impossible W&B mode fails before any work
    if spec_yaml is None and config.spec:
        spec_yaml = storage.read_text(config.spec)  # a missing spec file fails before any work too
    records, notes = load_records(config)
    if not records:
        raise AnalysisInputError("no result records found: " + "; ".join(notes))
    title = config.title or ("study tables" if not config.storage else f"ptft grid {config.storage}")
    provenance = collect_provenance(records, inputs=notes, spec_yaml=spec_yaml,
                                    plan=plan_summary(config.storage) if config.storage else None)
    analysis = analyze(records, main_step=config.main_step, chance_margin=config.chance_margin,
                       notes=notes, title=title, provenance=provenance)
    if config.storage:  # recipes: what each stage's own held-out data says (perplexities, reward accuracy)
        from evals.analysis.stages import stage_training_table

        analysis.stage_training = stage_training_table(config.storage)
    from evals.analysis import plots

    figures = plots.all_figures(analysis)
    written = write_outputs(analysis, config.out, figures)
    run_dir = None
    if wandb_settings is not None and wandb_settings.enabled:
        from evals.analysis.wandb_log import log_to_wandb

        run_dir = log_to_wandb(analysis, wandb_settings.project, entity=wandb_settings.entity,
                               mode=wandb_settings.mode, dir=wandb_settings.dir or None,
                               run_id=config.wandb.run_id, group=config.wandb.group, figures=figures)
    return AnalysisOutcome(records=len(records), written=written, report=written["report.html"],
                           wandb_run_dir=run_dir, notes=notes, counts=dict(analysis.counts))
