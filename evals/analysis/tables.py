"""The `Analysis` value type: every table of one analysis, the counts the report states, its settings.

The bottom of the analysis package next to `frame`: `compute` builds an `Analysis`; `plots`, `report`,
`outputs` and `wandb_log` read one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from evals.analysis.frame import MAIN_STEP
from evals.analysis.provenance import Provenance
from evals.results import ResultRecord

CHANCE_MARGIN = 0.02  # base within this much of chance (or below) is "at chance"


@dataclass
class Analysis:
    """Every table of one analysis, plus the counts the report states (nothing is dropped silently)."""

    records: list[ResultRecord]
    results: pd.DataFrame
    transfer: pd.DataFrame
    transfer_mean: pd.DataFrame
    forgetting: pd.DataFrame
    format_sensitivity: pd.DataFrame
    groups: pd.DataFrame
    curves: pd.DataFrame
    counts: dict[str, int]
    primary_shots: dict[str, int]  # per source: the shot count its figures use (the most common)
    notes: list[str] = field(default_factory=list)
    title: str = "ptft analysis"
    main_step: int = MAIN_STEP
    chance_margin: float = CHANCE_MARGIN
    method_comparison: pd.DataFrame = field(default_factory=pd.DataFrame)
    provenance: Provenance | None = None
    stages: pd.DataFrame = field(default_factory=pd.DataFrame)  # recipes: each stage against base and parent
    stage_training: pd.DataFrame = field(default_factory=pd.DataFrame)  # recipes: winners' held-out metrics

    @property
    def methods(self) -> list[str]:
        """The fine-tuning methods of the fine-tuned records ("full" first, then by name)."""
        names = {r.method for r in self.records if r.model_kind == "finetuned"}
        return sorted(names, key=lambda m: (m != "full", m))

    def tables(self) -> dict[str, pd.DataFrame]:
        """The CSV tables by file stem (results, transfer, transfer_mean, forgetting, ..., method_comparison)."""
        return {"results": self.results, "transfer": self.transfer, "transfer_mean": self.transfer_mean,
                "forgetting": self.forgetting, "format_sensitivity": self.format_sensitivity,
                "groups": self.groups, "curves": self.curves, "method_comparison": self.method_comparison,
                **({"stages": self.stages} if not self.stages.empty else {}),
                **({"stage_training": self.stage_training} if not self.stage_training.empty else {})}
