"""PNG figures (matplotlib, Agg): transfer/forgetting heatmaps, curves along pre-training, group Δ̄ curves.

Every function returns PNG bytes (or a dict name -> bytes); writing them is the caller's job, so the
same figures go to files, into the HTML report and to W&B.
"""

from __future__ import annotations

import io
import math
import re

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from evals.analysis.tables import Analysis  # noqa: E402


def slug(*parts: object) -> str:
    """A file-name-safe name from parts ("study", "faithful", 4) -> "study_faithful_4")."""
    text = "_".join(str(p) for p in parts if p is not None and str(p) != "")
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _lr_text(lr) -> str:
    return "lr=?" if lr is None or (isinstance(lr, float) and math.isnan(lr)) else f"lr={lr:g}"


def train_labels(frame: pd.DataFrame) -> pd.Series:
    """Row labels for training configurations: the dataset, plus format and lr only where they vary."""
    detail = frame.groupby("train_dataset", dropna=False)[["train_format", "lr"]].nunique(dropna=False)
    varies = set(detail.index[(detail["train_format"] > 1) | (detail["lr"] > 1)])
    return frame.apply(
        lambda r: f"{r['train_dataset']} ({r['train_format']}, {_lr_text(r['lr'])})"
        if r["train_dataset"] in varies else str(r["train_dataset"]), axis=1)


def eval_labels(frame: pd.DataFrame) -> pd.Series:
    """Column labels: the eval dataset, with its format unless it is `default`."""
    return frame.apply(
        lambda r: r["eval_dataset"] if r["eval_format"] == "default" else f"{r['eval_dataset']}[{r['eval_format']}]",
        axis=1)


def heatmap_png(matrix: pd.DataFrame, title: str, marks: pd.DataFrame | None = None, cbar_label: str = "Δ") -> bytes:
    """A diverging heatmap centred on 0; NaN cells grey; cells where `marks` is True get a '*'."""
    values = matrix.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    vmax = vmax or 1.0
    n_rows, n_cols = values.shape
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * n_cols + 2.5), max(2.5, 0.45 * n_rows + 1.8)))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_xticks(range(n_cols), [str(c) for c in matrix.columns], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n_rows), [str(i) for i in matrix.index], fontsize=7)
    for i in range(n_rows):
        for j in range(n_cols):
            value = values[i, j]
            mark = marks is not None and bool(marks.iloc[i, j])
            text = "NaN" if math.isnan(value) else f"{value:.2f}"
            ax.text(j, i, text + ("*" if mark else ""), ha="center", va="center", fontsize=6,
                    color="white" if abs(value) > 0.6 * vmax else "black")
    fig.colorbar(image, ax=ax, label=cbar_label, fraction=0.03)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def _pivot(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    frame = frame.assign(_row=train_labels(frame), _col=eval_labels(frame))
    return frame.pivot_table(index="_row", columns="_col", values=value, aggfunc="mean", dropna=False)


def slices(frame: pd.DataFrame, analysis: Analysis):
    """(name, sub-frame) per (source, mode, base_model) at that source's primary shot count."""
    multi_model = frame["base_model"].nunique() > 1
    for (source, mode, base_model), sub in frame.groupby(["source", "mode", "base_model"], sort=True):
        shots = analysis.primary_shots.get(source)
        sub = sub[sub["shots"] == shots]
        if len(sub):
            yield slug(source, mode, base_model if multi_model else None), f"{source}, {mode}, {shots}-shot", sub


def transfer_mean_figures(analysis: Analysis) -> dict[str, bytes]:
    """Heatmaps of Δ averaged over checkpoints, per source at its primary shots."""
    figures: dict[str, bytes] = {}
    for name, label, sub in slices(analysis.transfer_mean, analysis):
        figures[f"transfer_mean_{name}.png"] = heatmap_png(
            _pivot(sub, "delta_mean"), f"Δ = fine-tuned − base, mean over checkpoints ({label})")
    return figures


def transfer_checkpoint_figures(analysis: Analysis) -> dict[str, bytes]:
    """Heatmaps of Δ, one per checkpoint, per source at its primary shots."""
    figures: dict[str, bytes] = {}
    for name, label, sub in slices(analysis.transfer, analysis):
        for checkpoint, ckpt_rows in sub.groupby("checkpoint", sort=False):
            figures[f"transfer_{name}_ckpt{slug(checkpoint)}.png"] = heatmap_png(
                _pivot(ckpt_rows, "delta"), f"Δ at checkpoint {checkpoint} ({label})")
    return figures


def forgetting_figures(analysis: Analysis) -> dict[str, bytes]:
    """Mean min(0, Δ) over checkpoints on off-task cells; '*' marks cells flagged (base at chance / artifact)."""
    figures: dict[str, bytes] = {}
    for name, label, sub in slices(analysis.forgetting, analysis):
        marks = _pivot(sub.assign(flag=sub["flagged"].astype(float)), "flag").fillna(0) > 0
        figures[f"forgetting_{name}.png"] = heatmap_png(
            _pivot(sub, "forgetting"), f"forgetting min(0, Δ), mean over checkpoints ({label}); * flagged",
            marks=marks, cbar_label="min(0, Δ)")
    return figures


def _band(ax, points: pd.DataFrame, label: str, style: str = "-", color=None) -> None:
    points = points.sort_values("step")
    x = points["step"].astype(float).to_numpy()
    y = points["value"].to_numpy(dtype=float)
    std = points["std"].to_numpy(dtype=float)
    (line,) = ax.plot(x, y, style, marker="o", markersize=3, label=label, color=color)
    if np.isfinite(std).any():
        std = np.nan_to_num(std)
        ax.fill_between(x, y - std, y + std, alpha=0.2, color=line.get_color())


def _base_and_finetuned_bands(ax, rows) -> None:
    """The base curve (dashed black), then one band per fine-tuning (train dataset, format, lr)."""
    base = rows[rows["model_kind"] == "base"]
    if len(base):
        _band(ax, base, "base", "--", color="black")
    finetuned = rows[rows["model_kind"] == "finetuned"]
    if len(finetuned):
        finetuned = finetuned.assign(_label=train_labels(finetuned))
        for train_label, points in finetuned.groupby("_label", sort=True):
            _band(ax, points, f"FT {train_label}")


def curve_figures(analysis: Analysis) -> dict[str, bytes]:
    """Base and fine-tuned performance vs pre-training step (± std), one figure per eval dataset."""
    figures: dict[str, bytes] = {}
    for name, label, sub in slices(analysis.curves, analysis):
        for eval_dataset, rows in sub.groupby("eval_dataset", sort=True):
            formats = [f for f in ("default", "instruct", "io") if f in set(rows["eval_format"])]
            formats += sorted(set(rows["eval_format"]) - set(formats))
            fig, axes = plt.subplots(1, len(formats), figsize=(4.2 * len(formats), 3.2), squeeze=False)
            for ax, fmt in zip(axes[0], formats, strict=True):
                in_fmt = rows[rows["eval_format"] == fmt]
                _base_and_finetuned_bands(ax, in_fmt)
                ax.set_title(f"{eval_dataset} [{fmt}]", fontsize=9)
                ax.set_xlabel("pre-training step")
                ax.set_ylabel(str(in_fmt["metric"].iloc[0]))
                ax.legend(fontsize=6)
            fig.suptitle(label, fontsize=9)
            figures[f"curves_{name}_{slug(eval_dataset)}.png"] = _png(fig)
    return figures


def format_figures(analysis: Analysis) -> dict[str, bytes]:
    """Format spread (max − min over formats) vs step, per eval dataset with any spread, FT vs base."""
    figures: dict[str, bytes] = {}
    for name, label, sub in slices(analysis.format_sensitivity, analysis):
        sub = sub[sub["spread"].notna()]
        datasets = sorted(set(sub["eval_dataset"]))
        if not datasets:
            continue
        n_cols = min(4, len(datasets))
        n_rows = -(-len(datasets) // n_cols)
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.0 * n_cols, 3.0 * n_rows), squeeze=False)
        for ax in axes.flat[len(datasets):]:
            ax.set_visible(False)
        for ax, eval_dataset in zip(axes.flat, datasets, strict=False):
            rows = sub[sub["eval_dataset"] == eval_dataset].rename(columns={"spread": "value"})
            rows = rows.assign(std=float("nan"))
            _base_and_finetuned_bands(ax, rows)
            ax.set_title(f"{eval_dataset}: format spread", fontsize=9)
            ax.set_xlabel("pre-training step")
            ax.legend(fontsize=6)
        fig.suptitle(label, fontsize=9)
        fig.tight_layout()
        figures[f"format_sensitivity_{name}.png"] = _png(fig)
    return figures


def group_figures(analysis: Analysis) -> dict[str, bytes]:
    """Δ̄ per group vs pre-training step, one figure per partition (mode, model, shots, formats)."""
    figures: dict[str, bytes] = {}
    groups = analysis.groups
    if groups.empty:
        return figures
    keys = ["mode", "base_model", "shots", "train_format", "eval_format"]
    multi_model = groups["base_model"].nunique() > 1
    for key, rows in groups.groupby(keys, sort=True, dropna=False):
        if not (rows["n"] > 0).any():
            continue
        mode, base_model, shots, train_format, eval_format = key
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        for group, points in rows.groupby("group", sort=False):
            points = points[points["n"] > 0]
            if len(points):
                ax.plot(points["step"].astype(float), points["delta_mean"], marker="o", markersize=3, label=group)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel("pre-training step")
        ax.set_ylabel("mean Δ over the group's pairs")
        ax.set_title(f"group Δ̄: {mode}, {shots}-shot, train {train_format} → eval {eval_format}", fontsize=9)
        ax.legend(fontsize=6)
        name = slug("groups", mode, base_model if multi_model else None, f"{shots}shot", train_format, eval_format)
        figures[f"{name}.png"] = _png(fig)
    return figures


# The few figures that summarise an analysis (what W&B gets as images).
SUMMARY_FIGURES = (transfer_mean_figures, forgetting_figures, format_figures, group_figures)


def all_figures(analysis: Analysis) -> dict[str, bytes]:
    """Every figure of the analysis, keyed by file name."""
    figures: dict[str, bytes] = {}
    for make in SUMMARY_FIGURES + (transfer_checkpoint_figures, curve_figures):
        figures.update(make(analysis))
    return figures
