"""Compute one analysis: `analyze(records)` -> `Analysis` (transfer, forgetting, format sensitivity, groups)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pandas as pd

from evals.analysis import groups as groups_mod
from evals.analysis import matrices
from evals.analysis.frame import MAIN_STEP, check_duplicates, records_frame
from evals.analysis.methods import method_comparison_table
from evals.analysis.provenance import Provenance, collect_provenance
from evals.analysis.stages import stage_table
from evals.analysis.tables import CHANCE_MARGIN, Analysis
from evals.results import ResultRecord


def _primary_shots(records: Sequence[ResultRecord]) -> dict[str, int]:
    by_source: dict[str, Counter] = {}
    for r in records:
        # fine-tuned records decide (they are what Δ is about); base-only sources fall back to theirs
        weight = 1000 if r.model_kind == "finetuned" else 1
        by_source.setdefault(r.source, Counter())[r.shots] += weight
    return {source: counts.most_common(1)[0][0] for source, counts in by_source.items()}


def _counts(records: Sequence[ResultRecord], transfer: pd.DataFrame, forgetting: pd.DataFrame,
            fmt: pd.DataFrame, groups: pd.DataFrame) -> dict[str, int]:
    status = Counter(transfer["status"])
    used_base = {tuple(row) for row in transfer.loc[transfer["status"].isin(["ok", "missing_finetuned"]),
                                                      list(matrices.BASE_MATCH)].itertuples(index=False)}
    base = [r for r in records if r.model_kind == "base"]
    unused_base = sum(1 for r in base if tuple(getattr(r, f) for f in matrices.BASE_MATCH) not in used_base)
    return {
        "records": len(records),
        "records_base": len(base),
        "records_finetuned": len(records) - len(base),
        "transfer_cells": len(transfer),
        "transfer_ok": status.get("ok", 0),
        "transfer_missing_finetuned": status.get("missing_finetuned", 0),
        "transfer_missing_base": status.get("missing_base", 0),
        "transfer_missing_both": status.get("missing_both", 0),
        "base_records_without_finetuned_partner": unused_base,
        "forgetting_cells": len(forgetting),
        "forgetting_cells_missing": int(forgetting["delta"].isna().sum()),
        "forgetting_negative": int((forgetting["forgetting"] < 0).sum()),
        "forgetting_flagged_base_at_chance": int(forgetting["base_at_chance"].astype(bool).sum()),
        "forgetting_flagged_label_artifact": int(forgetting["label_artifact"].astype(bool).sum()),
        "format_rows": len(fmt),
        "format_rows_single_format": int(fmt["spread"].isna().sum()),
        "format_missing_format_cells": int(fmt["n_formats_missing"].sum()) if len(fmt) else 0,
        "group_rows": len(groups),
        "group_rows_empty": int((groups["n"] == 0).sum()),
        # faithful mode feeds every prompt whole; items longer than the model's trained window
        "items_past_window": sum(int((r.extra.get("counts") or {}).get("past_window", 0)) for r in records),
    }


def analyze(records: Sequence[ResultRecord], *, main_step: int = MAIN_STEP, chance_margin: float = CHANCE_MARGIN,
            notes: Sequence[str] = (), title: str = "ptft analysis",
            provenance: Provenance | None = None) -> Analysis:
    """Compute every table from result records.

    Raises `DuplicateRecordError` if two records share a `ResultRecord.key()`. Missing cells become NaN
    rows with a status and are counted in `Analysis.counts`; nothing is dropped. `provenance`: what the
    report states about the inputs (default: collected from the records, with `notes` as the inputs).
    """
    records = list(records)
    check_duplicates(records)
    transfer = matrices.transfer_table(records, main_step)
    forgetting = matrices.forgetting_table(transfer, chance_margin)
    fmt = matrices.format_sensitivity_table(records, main_step)
    group_rows = groups_mod.group_table(transfer, main_step)
    return Analysis(
        records=records,
        results=records_frame(records, main_step),
        transfer=transfer,
        transfer_mean=matrices.transfer_mean_table(transfer),
        forgetting=forgetting,
        format_sensitivity=fmt,
        groups=group_rows,
        curves=matrices.curves_table(records, main_step),
        counts=_counts(records, transfer, forgetting, fmt, group_rows),
        primary_shots=_primary_shots(records),
        notes=list(notes),
        title=title,
        main_step=main_step,
        chance_margin=chance_margin,
        method_comparison=method_comparison_table(transfer, forgetting),
        stages=stage_table(records),
        provenance=provenance if provenance is not None else collect_provenance(records, inputs=notes),
    )
