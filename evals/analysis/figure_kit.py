"""The pieces every figure shares: the style, saving (PNG + PDF), the pre-training step axis, CI bands,
chance lines and the Δ heatmap.

The step axis is logarithmic (symlog when a step-0 checkpoint is there), so steps 1k and 18k do not pile
up at x≈0 beside 738k; the final model, whose step is unknown, sits apart to the right of a dotted rule,
labelled "final", and no line joins it to the curve: a slope to an invented x would be a claim.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from evals.analysis import formatting  # noqa: E402

FONT_PT = 9  # body text; nothing on a figure is smaller than MIN_FONT_PT
MIN_FONT_PT = 8
STYLE = {
    "font.size": FONT_PT, "axes.titlesize": FONT_PT + 1, "axes.labelsize": FONT_PT, "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT, "legend.fontsize": MIN_FONT_PT, "figure.titlesize": FONT_PT + 2,
    "svg.fonttype": "none", "pdf.fonttype": 42,  # text stays text in the vector files
}
PNG_DPI = 110
BAND_LABEL = "band: 95% bootstrap CI"
MAX_STEP_LABELS = 8
GREY_NAN = "#e4e4e4"


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """The figures' matplotlib settings, for the figures made inside (the process's own stay untouched)."""
    with plt.rc_context(STYLE):
        yield


def new_figure(n_rows: int = 1, n_cols: int = 1, *, width: float, height: float, **kw):
    """A figure with constrained layout (titles, colour bars and legends never overlap)."""
    return plt.subplots(n_rows, n_cols, figsize=(width, height), layout="constrained", squeeze=False, **kw)


def save(fig, stem: str) -> dict[str, bytes]:
    """`{stem}.png` and `{stem}.pdf` of `fig`, then close it. The PDF carries no date, so reruns match."""
    out: dict[str, bytes] = {}
    for ext, kw in (("png", {"dpi": PNG_DPI}), ("pdf", {"metadata": {"CreationDate": None}})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=ext, **kw)
        out[f"{stem}.{ext}"] = buffer.getvalue()
    plt.close(fig)
    return out


@dataclass(frozen=True)
class StepAxis:
    """x positions along pre-training for one figure: log steps, the final model set apart."""

    steps: tuple[int, ...]  # the known steps, sorted
    has_final: bool

    @classmethod
    def of(cls, checkpoint_steps: Iterable[object]) -> StepAxis:
        values = list(checkpoint_steps)
        known = sorted({int(s) for s in values if not formatting.missing(s)})  # type: ignore[arg-type]
        return cls(tuple(known), any(formatting.missing(s) for s in values))

    @property
    def final_x(self) -> float:
        if not self.steps:
            return 0.0
        top = max(self.steps[-1], 1)
        return top * (4.0 if self.steps[0] < top else 2.0)

    def x(self, step: object) -> float:
        """The x position of a checkpoint step (None/NaN: the final model)."""
        return self.final_x if formatting.missing(step) else float(step)  # type: ignore[arg-type]

    def apply(self, ax) -> None:
        """Scale, ticks, the rule before the final model and the x label."""
        if self.steps:
            positive = [s for s in self.steps if s > 0]
            if 0 in self.steps:
                ax.set_xscale("symlog", linthresh=positive[0] if positive else 1.0, linscale=0.5)
            else:
                ax.set_xscale("log")
        shown = _thin(self.steps, MAX_STEP_LABELS)
        ticks = [float(s) for s in shown] + ([self.final_x] if self.has_final else [])
        labels = [formatting.step_text(s) for s in shown] + (["final"] if self.has_final else [])
        ax.set_xticks(ticks, labels)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        if self.steps:
            low, high = max(self.steps[0], 1) / 1.6, (self.final_x if self.has_final else self.steps[-1]) * 1.6
            ax.set_xlim(0 if 0 in self.steps else low, high)
            if self.has_final:
                ax.axvline(math.sqrt(self.steps[-1] * self.final_x) if self.steps[-1] > 0 else self.final_x / 2,
                           color="#999999", linestyle=":", linewidth=1)
        ax.set_xlabel("pre-training step (log scale)" if self.steps else "checkpoint")


def _thin(steps: Sequence[int], most: int) -> list[int]:
    """At most `most` tick steps, evenly picked, always the first and the last."""
    if len(steps) <= most:
        return list(steps)
    picks = np.linspace(0, len(steps) - 1, most).round().astype(int)
    return [steps[i] for i in sorted(set(picks))]


def series(ax, axis: StepAxis, points: pd.DataFrame, label: str, *, value: str = "value",
           low: str | None = None, high: str | None = None, style: str = "-", color=None) -> None:
    """One curve along pre-training with its band; the final model a separate marker with its bar."""
    points = points.assign(_final=points["checkpoint_step"].map(formatting.missing))
    known = points[~points["_final"]].sort_values("checkpoint_step")
    final = points[points["_final"]]
    (line,) = ax.plot([axis.x(s) for s in known["checkpoint_step"]], known[value].to_numpy(dtype=float), style,
                      marker="o", markersize=3.5, label=label, color=color)
    color = line.get_color()
    if low and high and len(known):
        lo, hi = known[low].to_numpy(dtype=float), known[high].to_numpy(dtype=float)
        if np.isfinite(lo).any():
            ax.fill_between([axis.x(s) for s in known["checkpoint_step"]], lo, hi, alpha=0.18, color=color,
                            linewidth=0)
    for _, row in final.iterrows():
        y = float(row[value])
        err = None
        if low and high and not formatting.missing(row[low]):
            err = [[y - float(row[low])], [float(row[high]) - y]]
        ax.errorbar([axis.final_x], [y], yerr=err, fmt="D", markersize=4, color=color, capsize=2,
                    label=None if len(known) else label)


def chance_line(ax, level: float | None) -> None:
    """A dotted line at the task's chance accuracy (uniform guess), labelled once in the legend."""
    if level is not None:
        ax.axhline(level, color="#666666", linestyle=(0, (1, 2)), linewidth=1, label=f"chance ({level:.2f})")


@dataclass(frozen=True)
class HeatmapPanel:
    """One metric's block of a heatmap: its columns share one colour scale."""

    metric: str
    matrix: pd.DataFrame  # rows: training configurations, columns: eval cells
    marks: pd.DataFrame | None = None  # True: a '*' after the value
    outline: pd.DataFrame | None = None  # True: the cell is the trained task (its own eval set)


def metric_scale(metric: object) -> str:
    """Metrics that share a colour scale: accuracy-like ones together, every other metric on its own."""
    return "accuracy" if metric in ("accuracy", "acc", "acc_norm") else str(metric)


def heatmap(panels: Sequence[HeatmapPanel], title: str, cbar_label: str = "Δ"):
    """A diverging heatmap centred on 0, one panel (own colour scale and bar) per metric.

    Empty cells are plain grey without text; trained-task cells are outlined in black.
    """
    n_rows = max(len(p.matrix.index) for p in panels)
    widths = [max(len(p.matrix.columns), 1) for p in panels]
    title_width = 0.085 * max(len(line) for line in title.split("\n"))  # inches: a title is never clipped
    fig, axes = new_figure(1, len(panels), width=max(5.5, title_width, 0.62 * sum(widths) + 2.6 + 1.3 * len(panels)),
                           height=max(2.6, 0.42 * n_rows + 2.0), gridspec_kw={"width_ratios": widths})
    for index, (ax, panel) in enumerate(zip(axes[0], panels, strict=True)):
        values = panel.matrix.to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
        vmax = vmax or 1.0
        cmap = plt.get_cmap("RdBu").with_extremes(bad=GREY_NAN)
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_xticks(range(values.shape[1]), [str(c) for c in panel.matrix.columns], rotation=60, ha="right")
        # panels share their rows: only the first names them
        ax.set_yticks(range(values.shape[0]), [str(i) for i in panel.matrix.index] if index == 0 else [])
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if panel.outline is not None and bool(panel.outline.iloc[i, j]):
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
                if not math.isfinite(values[i, j]):
                    continue  # blank, not "NaN"
                mark = "*" if panel.marks is not None and bool(panel.marks.iloc[i, j]) else ""
                shown = f"{values[i, j]:+.2f}" if abs(values[i, j]) >= 0.005 else "0.00"
                ax.text(j, i, shown + mark, ha="center", va="center", fontsize=MIN_FONT_PT,
                        color="white" if abs(values[i, j]) > 0.6 * vmax else "black")
        fig.colorbar(image, ax=ax, label=f"{cbar_label} ({panel.metric})", fraction=0.05, pad=0.02)
        ax.set_title(panel.metric if len(panels) > 1 else "")
    fig.suptitle(title)
    return fig
