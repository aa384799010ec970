"""Log one analysis to W&B as a summary run: long tables, heatmaps (Vega + PNG), curves along pre-training.

Offline unless a WANDB_API_KEY is set (runs sync later with `wandb sync`). The key is never read
into anything we log: only wandb itself sees it, through the environment.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any

import pandas as pd

from evals.analysis import plots
from evals.analysis.tables import Analysis
from ptft.core.wandb_settings import resolve_mode

HEATMAP_SPEC = "wandb/heatmap/v1"  # the custom Vega spec id; plot_table binds it to the table's columns


def _cell(value: Any) -> Any:
    """A JSON-safe table cell: NaN/NA -> None, numpy scalars -> Python."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def to_wandb_table(frame: pd.DataFrame):
    """A `wandb.Table` of a DataFrame, with missing cells as nulls (wandb rejects pandas NA)."""
    import wandb

    columns = [str(c) for c in frame.columns]
    data = [[_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return wandb.Table(columns=columns, data=data, allow_mixed_types=True)


def _heatmap_frame(sub: pd.DataFrame, value: str) -> pd.DataFrame:
    return pd.DataFrame({"train": plots.train_labels(sub).to_numpy(), "eval": plots.eval_labels(sub).to_numpy(),
                         value: sub[value].to_numpy()})


def _line_series(points: pd.DataFrame, series: pd.Series, y: str, title: str):
    import wandb

    xs, ys, keys = [], [], []
    for key, rows in points.assign(_series=series.to_numpy()).groupby("_series", sort=True):
        rows = rows[rows[y].notna()].sort_values("step")
        if len(rows):
            xs.append([int(s) for s in rows["step"]])
            ys.append([float(v) for v in rows[y]])
            keys.append(str(key))
    if not keys:
        return None
    return wandb.plot.line_series(xs=xs, ys=ys, keys=keys, title=title, xname="pre-training step")


def log_to_wandb(analysis: Analysis, project: str, entity: str | None = None, mode: str | None = "offline",
                 dir: str | None = None, run_id: str | None = None, group: str | None = None,
                 figures: dict[str, bytes] | None = None) -> str | None:
    """Log `analysis` as one W&B run; returns the run's local directory (None when disabled).

    Logged: every long table (`wandb.Table`), a Vega heatmap (`wandb.plot_table`) and the PNG
    (`wandb.Image`) of the mean transfer and forgetting matrices, group Δ̄ and per-dataset curves with
    the pre-training step as x axis (line-series charts, and group scalars against `pt_step`).
    """
    import wandb
    from PIL import Image

    mode = resolve_mode(mode)
    if dir is not None:
        os.makedirs(dir, exist_ok=True)
    run = wandb.init(
        project=project, entity=entity, dir=dir, id=run_id, group=group, job_type="analysis", mode=mode,
        name=analysis.title, resume="allow" if run_id else None, save_code=False, reinit="create_new",
        config={"main_step": analysis.main_step, "chance_margin": analysis.chance_margin,
                "primary_shots": analysis.primary_shots, "counts": analysis.counts},
        settings=wandb.Settings(init_timeout=30, console="off", silent=True),
    )
    try:
        if figures is None:
            figures = {name: png for make in plots.SUMMARY_FIGURES for name, png in make(analysis).items()}
        logged: dict[str, Any] = {f"{stem}_table": to_wandb_table(t) for stem, t in analysis.tables().items()}
        for name, _label, sub in plots.slices(analysis.transfer_mean, analysis):
            table = to_wandb_table(_heatmap_frame(sub, "delta_mean"))
            logged[f"transfer_heatmap_{name}"] = wandb.plot_table(
                HEATMAP_SPEC, table, {"x": "eval", "y": "train", "color": "delta_mean"})
        for name, _label, sub in plots.slices(analysis.forgetting, analysis):
            mean = sub.groupby(["train_dataset", "train_format", "method", "lr", "eval_dataset", "eval_format"],
                               dropna=False, as_index=False)["forgetting"].mean()
            table = to_wandb_table(_heatmap_frame(mean, "forgetting"))
            logged[f"forgetting_heatmap_{name}"] = wandb.plot_table(
                HEATMAP_SPEC, table, {"x": "eval", "y": "train", "color": "forgetting"})
        for name, png in figures.items():
            if name.endswith(".png") and name.startswith(("transfer_mean_", "forgetting_", "groups",
                                                           "format_sensitivity_", "method_comparison_")):
                logged[f"png/{name.removesuffix('.png')}"] = wandb.Image(Image.open(io.BytesIO(png)), caption=name)
        groups = analysis.groups
        for key, rows in groups.groupby(["mode", "shots", "train_format", "eval_format", "method"], sort=True,
                                        dropna=False):
            parts = [str(k) for k in key[:-1]] + ([] if key[-1] == "full" else [str(key[-1])])  # full: as before
            chart = _line_series(rows, rows["group"], "delta_mean", f"group Δ̄ {'/'.join(parts)}")
            if chart is not None:
                logged[f"groups_curve_{'_'.join(parts)}"] = chart
        for name, label, sub in plots.slices(analysis.curves, analysis):
            for (eval_dataset, eval_format), rows in sub.groupby(["eval_dataset", "eval_format"], sort=True):
                series = rows["model_kind"].where(rows["model_kind"] == "base",
                                                  "FT " + plots.train_labels(rows).astype(str))
                chart = _line_series(rows, series, "value", f"{eval_dataset} [{eval_format}] ({label})")
                if chart is not None:
                    logged[f"curve_{name}_{eval_dataset}_{eval_format}"] = chart
        run.log(logged)
        _log_group_scalars(run, groups)
        run.summary.update({f"count/{k}": v for k, v in analysis.counts.items()})
        return None if mode == "disabled" else os.path.dirname(str(run.dir))
    finally:
        run.finish()


def _log_group_scalars(run, groups: pd.DataFrame) -> None:
    """Group Δ̄ as scalars against `pt_step`, so the W&B UI can plot any of them over pre-training."""
    if groups.empty:
        return
    run.define_metric("pt_step")
    run.define_metric("group/*", step_metric="pt_step")
    by_step: dict[int, dict[str, float]] = {}
    for row in groups[groups["n"] > 0].to_dict("records"):
        method = "" if row["method"] == "full" else f"/{row['method']}"  # full keeps its pre-method key
        key = (f"group/{row['mode']}/{row['shots']}shot/{row['train_format']}-{row['eval_format']}{method}/"
               f"{row['group']}")
        by_step.setdefault(int(row["step"]), {})[key] = float(row["delta_mean"])
    for step in sorted(by_step):
        run.log({"pt_step": step, **by_step[step]})
