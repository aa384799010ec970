"""The figures of an analysis (matplotlib, Agg): Δ and forgetting heatmaps, curves along pre-training,
format spread, group Δ̄, and learning against forgetting per fine-tuning method.

Every builder returns {file name: bytes}, a PNG and a PDF per figure; writing them is the caller's job, so
the same figures go to files, into the HTML report (the PNGs) and to W&B. Shared pieces (style, step
axis, bands, heatmap) are in `figure_kit`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import pandas as pd
from matplotlib.patches import Patch

from evals.analysis import figure_kit as kit
from evals.analysis import formatting, taskinfo
from evals.analysis.matrices import FORMATS, Z95
from evals.analysis.tables import Analysis

NAN = float("nan")
ACCURACY_METRICS = ("accuracy", "acc", "acc_norm")


def slug(*parts: object) -> str:
    """A file-name-safe name from parts ("study", "faithful", 4) -> "study_faithful_4")."""
    text = "_".join(str(p) for p in parts if p is not None and str(p) != "")
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")


def _lr_text(lr) -> str:
    return "lr=?" if formatting.missing(lr) else f"lr={formatting.lr_text(lr)}"


def train_labels(frame: pd.DataFrame) -> pd.Series:
    """Row labels for training configurations: the dataset, plus format and lr only where they vary for
    that dataset, plus the method wherever the frame holds more than one."""
    if frame.empty:
        return pd.Series([], dtype=object, index=frame.index)
    detail = frame.groupby("train_dataset", dropna=False)[["train_format", "lr"]].nunique(dropna=False)
    varies = set(detail.index[(detail["train_format"] > 1) | (detail["lr"] > 1)])
    multi_method = "method" in frame and frame["method"].nunique() > 1

    def label(row) -> str:
        text = str(row["train_dataset"])
        if row["train_dataset"] in varies:
            text += f" ({row['train_format']}, {_lr_text(row['lr'])})"
        prior = row.get("prior_stages")
        if isinstance(prior, str) and prior:  # a recipe's later stage: say what came before it
            text = f"{prior} > {text}"
        return f"{text} · {row['method']}" if multi_method else text

    return frame.apply(label, axis=1)


def eval_labels(frame: pd.DataFrame) -> pd.Series:
    """Column labels: the eval dataset, with its format unless it is `default`."""
    if frame.empty:
        return pd.Series([], dtype=object, index=frame.index)
    return frame.apply(
        lambda r: r["eval_dataset"] if r["eval_format"] == "default" else f"{r['eval_dataset']}[{r['eval_format']}]",
        axis=1)


def slices(frame: pd.DataFrame, analysis: Analysis) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(name, label, sub-frame) per (source, mode, base_model) at that source's primary shot count."""
    if frame.empty:
        return
    multi_model = frame["base_model"].nunique() > 1
    for (source, mode, base_model), sub in frame.groupby(["source", "mode", "base_model"], sort=True):
        shots = analysis.primary_shots.get(source)
        sub = sub[sub["shots"] == shots]
        if len(sub):
            yield slug(source, mode, base_model if multi_model else None), f"{source}, {mode}, {shots}-shot", sub


def _panels(frame: pd.DataFrame, value: str, flag: str | None = None) -> list[kit.HeatmapPanel]:
    """One heatmap panel per metric scale; the trained task's own cells outlined."""
    frame = frame.assign(_row=train_labels(frame).to_numpy(), _col=eval_labels(frame).to_numpy(),
                         _scale=frame["metric"].map(kit.metric_scale))
    rows = sorted(set(frame["_row"]))
    row_train = dict(zip(frame["_row"], frame["train_dataset"], strict=True))
    panels = []
    for scale, sub in frame.groupby("_scale", sort=True):
        matrix = sub.pivot_table(index="_row", columns="_col", values=value, aggfunc="mean", dropna=False)
        matrix = matrix.reindex(index=rows)
        col_eval = dict(zip(sub["_col"], sub["eval_dataset"], strict=True))
        outline = pd.DataFrame([[taskinfo.in_domain(row_train[r], col_eval[c]) for c in matrix.columns]
                                for r in matrix.index], index=matrix.index, columns=matrix.columns)
        marks = None
        if flag is not None:
            flagged = sub.assign(_flag=sub[flag].astype(float))
            marks = flagged.pivot_table(index="_row", columns="_col", values="_flag", aggfunc="max", dropna=False)
            marks = marks.reindex(index=matrix.index, columns=matrix.columns).fillna(0) > 0
        panels.append(kit.HeatmapPanel(scale, matrix, marks, outline))
    return panels


OUTLINE_NOTE = "black outline: the trained task's own eval set"


def transfer_mean_figures(analysis: Analysis) -> dict[str, bytes]:
    """Heatmaps of Δ averaged over checkpoints, per source at its primary shots."""
    figures: dict[str, bytes] = {}
    with kit.styled():
        for name, label, sub in slices(analysis.transfer_mean, analysis):
            fig = kit.heatmap(_panels(sub, "delta_mean"),
                              f"Δ = fine-tuned − base, mean over checkpoints ({label})\n{OUTLINE_NOTE}")
            figures.update(kit.save(fig, f"transfer_mean_{name}"))
    return figures


def transfer_checkpoint_figures(analysis: Analysis) -> dict[str, bytes]:
    """Heatmaps of Δ, one per checkpoint (in step order), per source at its primary shots."""
    figures: dict[str, bytes] = {}
    with kit.styled():
        for name, label, sub in slices(analysis.transfer, analysis):
            order = sorted(set(zip(sub["checkpoint"], sub["checkpoint_step"], strict=True)),
                           key=lambda c: (formatting.step_order(c[1]), str(c[0])))
            for checkpoint, _step in order:
                rows = sub[sub["checkpoint"] == checkpoint]
                fig = kit.heatmap(_panels(rows, "delta"), f"Δ at checkpoint {checkpoint} ({label})\n{OUTLINE_NOTE}")
                figures.update(kit.save(fig, f"transfer_{name}_ckpt{slug(checkpoint)}"))
    return figures


def forgetting_figures(analysis: Analysis) -> dict[str, bytes]:
    """Mean min(0, Δ) over checkpoints on off-task cells; '*' marks cells flagged (base at chance / artifact)."""
    figures: dict[str, bytes] = {}
    with kit.styled():
        for name, label, sub in slices(analysis.forgetting, analysis):
            fig = kit.heatmap(_panels(sub, "forgetting", flag="flagged"),
                              f"forgetting min(0, Δ), mean over checkpoints ({label})\n"
                              "* flagged: base at chance or label artifact", cbar_label="min(0, Δ)")
            figures.update(kit.save(fig, f"forgetting_{name}"))
    return figures


def _with_band(rows: pd.DataFrame) -> pd.DataFrame:
    """`lo`/`hi`: the record's bootstrap CI, or ±1.96 std where a source has only a standard error."""
    std = rows["std"].astype(float)
    lo = rows["ci_low"].astype(float).fillna(rows["value"] - Z95 * std)
    hi = rows["ci_high"].astype(float).fillna(rows["value"] + Z95 * std)
    return rows.assign(lo=lo, hi=hi)


def _legend(fig, axes, extra: list | None = None) -> None:
    """One legend for the figure, outside the panels on the right (labels deduplicated)."""
    handles, labels = [], []
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            if text not in labels and not text.startswith("_"):
                handles.append(handle)
                labels.append(text)
    for handle in extra or []:
        handles.append(handle)
        labels.append(handle.get_label())
    if handles:
        fig.legend(handles, labels, loc="outside right upper")


def _lines(ax, axis: kit.StepAxis, rows: pd.DataFrame, value: str, band: bool) -> None:
    """The base curve (dashed black), then one curve per fine-tuning configuration."""
    low, high = ("lo", "hi") if band else (None, None)
    base = rows[rows["model_kind"] == "base"]
    if len(base):
        kit.series(ax, axis, base, "base", value=value, low=low, high=high, style="--", color="black")
    finetuned = rows[rows["model_kind"] == "finetuned"]
    if len(finetuned):
        finetuned = finetuned.assign(_label=train_labels(finetuned).to_numpy())
        for train_label, points in finetuned.groupby("_label", sort=True):
            kit.series(ax, axis, points, f"FT {train_label}", value=value, low=low, high=high)


def _formats(rows: pd.DataFrame, column: str = "eval_format") -> list[str]:
    present = set(rows[column])
    return [f for f in FORMATS if f in present] + sorted(present - set(FORMATS))


def curve_figure(eval_dataset: str, rows: pd.DataFrame, axis: kit.StepAxis, label: str):
    """One eval dataset's curves (rows of `Analysis.curves`): a panel per format on a shared y axis, bands
    of the bootstrap CI, the chance level for accuracy. Call inside `figure_kit.styled()`."""
    rows = _with_band(rows)
    formats = _formats(rows)
    fig, axes = kit.new_figure(1, len(formats), width=3.6 * len(formats) + 2.4, height=3.3, sharey=True)
    metric = str(rows["metric"].iloc[0])
    chance = taskinfo.chance_level(eval_dataset) if metric in ACCURACY_METRICS else None
    for ax, eval_format in zip(axes[0], formats, strict=True):
        _lines(ax, axis, rows[rows["eval_format"] == eval_format], "value", band=True)
        kit.chance_line(ax, chance)
        axis.apply(ax)
        ax.set_title(f"format: {eval_format}")
    axes[0][0].set_ylabel(metric)
    fig.suptitle(f"{eval_dataset} ({label})")
    _legend(fig, axes[0], [Patch(facecolor="grey", alpha=0.18, label=kit.BAND_LABEL)])
    return fig


def curve_figures(analysis: Analysis) -> dict[str, bytes]:
    """Base and fine-tuned scores along pre-training, one figure per eval dataset (`curve_figure`)."""
    figures: dict[str, bytes] = {}
    with kit.styled():
        for name, label, sub in slices(analysis.curves, analysis):
            axis = kit.StepAxis.of(sub["checkpoint_step"])  # one axis per slice: figures line up
            for eval_dataset, rows in sub.groupby("eval_dataset", sort=True):
                fig = curve_figure(str(eval_dataset), rows, axis, label)
                figures.update(kit.save(fig, f"curves_{name}_{slug(eval_dataset)}"))
    return figures


def token_curve_figures(analysis: Analysis) -> dict[str, bytes]:
    """Several models in one grid: each eval set's score against tokens seen (billions, log scale), the one
    axis two families share (their steps differ in batch size). Only where two or more models have their
    tokens known (parsed from the revision, or `tokens_per_step`: docs/families.md)."""
    curves = analysis.curves
    figures: dict[str, bytes] = {}
    if curves.empty or "checkpoint_tokens" not in curves:
        return figures
    known = curves[curves["checkpoint_tokens"].notna() & (curves["checkpoint_tokens"] > 0)]
    if known["base_model"].nunique() < 2:
        return figures
    with kit.styled():
        for (source, mode, eval_dataset, eval_format), rows in known.groupby(
                ["source", "mode", "eval_dataset", "eval_format"], sort=True):
            if rows["base_model"].nunique() < 2:
                continue
            fig, axes = kit.new_figure(1, 1, width=6.4, height=3.8)
            ax = axes[0][0]
            for (base_model, kind, train_dataset, method), points in rows.groupby(
                    ["base_model", "model_kind", "train_dataset", "method"], sort=True, dropna=False):
                points = points.sort_values("checkpoint_tokens")
                trained = "base" if kind == "base" else f"{train_dataset}" + ("" if method == "full" else f" {method}")
                ax.plot(points["checkpoint_tokens"], points["value"], marker="o", label=f"{base_model} · {trained}")
            ax.set_xscale("log")
            ax.set_xlabel("tokens seen in pre-training (billions, log scale)")
            ax.set_ylabel(str(rows["metric"].iloc[0]))
            ax.legend(fontsize=8)
            fig.suptitle(f"{eval_dataset} [{eval_format}] along pre-training tokens ({source}, {mode})")
            figures.update(kit.save(fig, f"curves_tokens_{slug(source, mode, eval_dataset, eval_format)}"))
    return figures


def format_figures(analysis: Analysis) -> dict[str, bytes]:
    """Format spread (max − min over formats) along pre-training, per eval dataset with any spread."""
    figures: dict[str, bytes] = {}
    with kit.styled():
        for name, label, sub in slices(analysis.format_sensitivity, analysis):
            sub = sub[sub["spread"].notna()]
            datasets = sorted(set(sub["eval_dataset"]))
            if not datasets:
                continue
            axis = kit.StepAxis.of(sub["checkpoint_step"])
            n_cols = min(4, len(datasets))
            n_rows = -(-len(datasets) // n_cols)
            fig, axes = kit.new_figure(n_rows, n_cols, width=3.4 * n_cols + 2.4, height=2.8 * n_rows)
            for ax in axes.flat[len(datasets):]:
                ax.set_visible(False)
            for ax, eval_dataset in zip(axes.flat, datasets, strict=False):
                _lines(ax, axis, sub[sub["eval_dataset"] == eval_dataset], "spread", band=False)
                axis.apply(ax)
                ax.set_title(eval_dataset)
                ax.set_ylabel("spread over formats")
            fig.suptitle(f"format sensitivity: max − min score over eval formats ({label})")
            _legend(fig, list(axes.flat))
            figures.update(kit.save(fig, f"format_sensitivity_{name}"))
    return figures


def group_figures(analysis: Analysis) -> dict[str, bytes]:
    """Δ̄ per group along pre-training, one figure per partition (mode, model, shots, formats, method)."""
    figures: dict[str, bytes] = {}
    groups = analysis.groups
    if groups.empty:
        return figures
    keys = ["mode", "base_model", "shots", "train_format", "eval_format", "method"]
    multi_model = groups["base_model"].nunique() > 1
    multi_method = groups["method"].nunique() > 1
    with kit.styled():
        for key, rows in groups.groupby(keys, sort=True, dropna=False):
            if not (rows["n"] > 0).any():
                continue
            mode, base_model, shots, train_format, eval_format, method = key
            axis = kit.StepAxis.of(rows["checkpoint_step"])
            fig, axes = kit.new_figure(width=7.2, height=3.6)
            ax = axes[0][0]
            for group, points in rows.groupby("group", sort=False):
                points = points[points["n"] > 0]
                if len(points):
                    kit.series(ax, axis, points, group, value="delta_mean")
            ax.axhline(0, color="grey", linewidth=0.8)
            axis.apply(ax)
            ax.set_ylabel("mean Δ over the group's pairs")
            method_text = f", {method}" if multi_method else ""
            ax.set_title(f"group Δ̄: {mode}, {shots}-shot, train {train_format} → eval {eval_format}{method_text}")
            _legend(fig, [ax])
            name = slug("groups", mode, base_model if multi_model else None, f"{shots}shot", train_format,
                        eval_format, method if multi_method else None)
            figures.update(kit.save(fig, name))
    return figures


def method_comparison_figures(analysis: Analysis) -> dict[str, bytes]:
    """In-domain gain against off-task forgetting, a marker per method × checkpoint, each method's
    checkpoints joined in step order; one panel per training set. Only where two or more methods ran."""
    figures: dict[str, bytes] = {}
    table = analysis.method_comparison
    if table.empty or table["method"].nunique() < 2:
        return figures
    with kit.styled():
        for name, label, sub in slices(table, analysis):
            sub = sub[sub["in_domain_gain"].notna()]
            if "prior_stages" in sub:  # one-stage cells: a recipe's stages are the stage figures' (stages_*)
                sub = sub[sub["prior_stages"].isna()]
            if len(sub) and sub["method"].nunique() > 1:
                figures.update(kit.save(method_figure(sub, label), f"method_comparison_{name}"))
    return figures


def method_figure(rows: pd.DataFrame, label: str):
    """Rows of `Analysis.method_comparison` (one slice) as a panel per training set. Call inside `styled()`."""
    configs = sorted(set(zip(rows["train_dataset"], rows["train_format"], strict=True)))
    n_cols = min(3, len(configs))
    n_rows = -(-len(configs) // n_cols)
    fig, axes = kit.new_figure(n_rows, n_cols, width=4.3 * n_cols + 2.2, height=3.6 * n_rows)
    for ax in axes.flat[len(configs):]:
        ax.set_visible(False)
    methods = sorted(set(rows["method"]), key=lambda m: (m != "full", m))
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    for ax, (train_dataset, train_format) in zip(axes.flat, configs, strict=False):
        _method_panel(ax, rows[(rows["train_dataset"] == train_dataset) & (rows["train_format"] == train_format)],
                      colors)
        ax.set_title(f"{train_dataset} ({train_format})")
        ax.set_xlabel("off-task forgetting: −mean min(0, Δ)")
        ax.set_ylabel("in-domain gain Δ")
    fig.suptitle(f"learning vs forgetting per method ({label})\n"
                 "points: checkpoints in step order; bars: 95% CI of the gain")
    _legend(fig, list(axes.flat))
    return fig


def _method_panel(ax, rows: pd.DataFrame, colors: dict[str, str]) -> None:
    multi_lr = rows.groupby("method")["lr"].nunique().max() > 1
    for (method, lr), points in rows.groupby(["method", "lr"], sort=True, dropna=False):
        points = points.sort_values("checkpoint_step", key=lambda s: s.map(formatting.step_order))
        x = -points["off_task_forgetting"].astype(float)
        y = points["in_domain_gain"].astype(float)
        err = [y - points["in_domain_ci_low"].astype(float), points["in_domain_ci_high"].astype(float) - y]
        text = f"{method} ({_lr_text(lr)})" if multi_lr else str(method)
        ax.errorbar(x, y, yerr=err, fmt="-o", markersize=4, capsize=2, color=colors[method], label=text)
        at: dict[tuple[float, float], list[str]] = {}  # checkpoints on one spot share one label
        for xi, yi, step in zip(x, y, points["checkpoint_step"], strict=True):
            if math.isfinite(xi) and math.isfinite(yi):
                at.setdefault((round(xi, 4), round(yi, 4)), []).append(formatting.step_text(step))
        for (xi, yi), steps in at.items():
            ax.annotate(", ".join(steps), (xi, yi), textcoords="offset points", xytext=(4, 4),
                        fontsize=kit.MIN_FONT_PT, color=colors[method])
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axvline(0, color="grey", linewidth=0.8)


def stage_figures(analysis: Analysis) -> dict[str, bytes]:
    """Recipes: each eval set's score along the recipe (base, stage 1, stage 2, ...), one line per recipe
    chain and checkpoint, so what a later stage took away from an earlier one is a line going down."""
    table = analysis.stages
    if table.empty:
        return {}
    figures: dict[str, bytes] = {}
    for (source, mode, base_model), sub in table.groupby(["source", "mode", "base_model"], sort=True):
        evals = sorted(set(sub["eval_dataset"]))[:8]
        leaves = [line for line in sorted(set(sub["lineage"]))
                  if not any(other.startswith(line + ">") for other in set(sub["lineage"]))]
        formats = sorted(set(sub["eval_format"]), key=lambda f: (f != "default", f))
        sub = sub[sub["eval_format"] == formats[0]]  # one format: the default where there is one
        n_cols = min(4, len(evals))
        n_rows = -(-len(evals) // n_cols)
        with kit.styled():
            fig, grid = kit.new_figure(n_rows, n_cols, width=3.4 * n_cols + 1.0, height=3.0 * n_rows + 0.8)
            for ax in grid.flat[len(evals):]:
                ax.set_visible(False)
            for ax, eval_dataset in zip(grid.flat, evals, strict=False):
                cells = sub[sub["eval_dataset"] == eval_dataset]
                for leaf in leaves:
                    chain = [">".join(leaf.split(">")[:i]) for i in range(1, leaf.count(">") + 2)]
                    for checkpoint, rows in cells[cells["lineage"].isin(chain)].groupby("checkpoint", sort=True):
                        by_line = {r["lineage"]: r for r in rows.to_dict("records")}
                        if chain[0] not in by_line:
                            continue
                        values = [by_line[chain[0]]["base"]] + [by_line[c]["value"] if c in by_line else NAN for c in chain]
                        ax.plot(range(len(values)), values, marker="o",
                                label=f"{leaf.replace('>', ' → ')} · ckpt {checkpoint}")
                ax.set_xticks(range(max((leaf.count(">") + 2 for leaf in leaves), default=1)))
                ax.set_xticklabels(["base", *[f"stage {i}" for i in range(1, max(leaf.count(">") + 2 for leaf in leaves))]])
                ax.set_title(eval_dataset)
                ax.set_ylabel(str(cells["metric"].iloc[0]) if len(cells) else "")
            handles, labels = grid.flat[0].get_legend_handles_labels()
            if handles:
                fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)), fontsize=8)
            fig.suptitle(f"Scores along each recipe: {str(base_model).rstrip('/').split('/')[-1]} "
                         f"({source}, {mode}, {formats[0]} format)")
            figures.update(kit.save(fig, f"stages_{slug(source, mode, base_model)}"))
    return figures


# The few figures that summarise an analysis (what W&B gets as images).
SUMMARY_FIGURES = (transfer_mean_figures, forgetting_figures, format_figures, group_figures,
                   method_comparison_figures)


def all_figures(analysis: Analysis) -> dict[str, bytes]:
    """Every figure of the analysis, keyed by file name (a .png and a .pdf each)."""
    figures: dict[str, bytes] = {}
    for make in SUMMARY_FIGURES + (transfer_checkpoint_figures, curve_figures, token_curve_figures, stage_figures):
        figures.update(make(analysis))
    return figures
