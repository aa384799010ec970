"""`report.html`: one self-contained page (images embedded as base64, tables as HTML) with a table of contents."""

from __future__ import annotations

import base64
import html

import pandas as pd

from evals.analysis.tables import Analysis

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:0.3em 0}
nav{background:#fafafa;border:1px solid #ddd;padding:0.5em 1.5em;display:inline-block}
details{margin:0.5em 0}
.note{color:#555;font-size:13px}
"""

# (anchor, heading) in page order; the table of contents is built from this list.
SECTIONS = [
    ("summary", "Summary and counts"),
    ("notes", "Import notes"),
    ("transfer", "Transfer: Δ = fine-tuned − base"),
    ("forgetting", "Forgetting: min(0, Δ) off the trained task"),
    ("format", "Format sensitivity"),
    ("curves", "Performance along pre-training"),
    ("groups", "Group averages and slopes"),
    ("files", "Files"),
]


def _table(frame: pd.DataFrame, max_rows: int | None = None) -> str:
    shown = frame if max_rows is None or len(frame) <= max_rows else frame.head(max_rows)
    text = shown.to_html(index=False, na_rep="NaN", float_format=lambda v: f"{v:.4g}", border=0)
    if shown is not frame:
        text += f'<p class="note">first {max_rows} of {len(frame)} rows; all of them are in the CSV.</p>'
    return text


def _image(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}"><figcaption class="note">{html.escape(name)}</figcaption></figure>'


def _images(figures: dict[str, bytes], prefix: str) -> str:
    return "\n".join(_image(name, png) for name, png in sorted(figures.items()) if name.startswith(prefix))


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{body}</details>"


def render_report(analysis: Analysis, figures: dict[str, bytes]) -> str:
    """The HTML report for `analysis`, embedding `figures` (file name -> PNG bytes)."""
    counts = pd.DataFrame(sorted(analysis.counts.items()), columns=["count", "value"])
    shots = ", ".join(f"{s}: {k}-shot" for s, k in sorted(analysis.primary_shots.items())) or "none"
    body: dict[str, str] = {}
    body["summary"] = (
        f"<p>{len(analysis.records)} result records. Missing cells are NaN rows in the CSVs, never dropped; "
        f"the counts below say how many there are. Figures use each source's most common shot count ({shots}); "
        f"the CSVs hold every shot count. The final model (step unknown) is placed at step {analysis.main_step}. "
        f"A fine-tuned record's base is the base record with the same source, mode, base model, checkpoint, "
        f"eval dataset, format, shots and metric (sources from different harnesses are never paired). "
        f"Relative Δ is Δ / base × 100. A forgetting cell is flagged when the base scores at or below "
        f"chance + {analysis.chance_margin} (chance from the task registry) or is the QQP/STS-B faithful-mode "
        f"label artifact.</p>" + _table(counts)
    )
    body["notes"] = (
        "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in analysis.notes) + "</ul>"
        if analysis.notes else "<p>None.</p>"
    )
    per_ckpt = "\n".join(
        _image(n, p) for n, p in sorted(figures.items()) if n.startswith("transfer_") and "_ckpt" in n)
    body["transfer"] = (
        _images(figures, "transfer_mean_")
        + _details("Per-checkpoint heatmaps", per_ckpt)
        + "<h3>Mean over checkpoints (n = checkpoints with both values)</h3>"
        + _table(analysis.transfer_mean, 500)
        + _details("Every cell (transfer.csv)", _table(analysis.transfer, 1000))
    )
    forgetting = analysis.forgetting
    body["forgetting"] = (
        _images(figures, "forgetting_")
        + "<h3>Cells that lost ground (forgetting &lt; 0)</h3>"
        + _table(forgetting[forgetting["forgetting"] < 0], 500)
    )
    fmt = analysis.format_sensitivity
    body["format"] = (
        _images(figures, "format_sensitivity_")
        + "<h3>Spreads over formats (rows with at least two formats)</h3>"
        + _table(fmt[fmt["spread"].notna()], 500)
    )
    body["curves"] = _images(figures, "curves_")
    body["groups"] = _images(figures, "groups") + _table(analysis.groups, 1000)
    files = sorted([f"{stem}.csv" for stem in analysis.tables()] + list(figures))
    body["files"] = "<ul>" + "".join(f'<li><a href="{html.escape(f)}">{html.escape(f)}</a></li>' for f in files) + "</ul>"

    toc = "".join(f'<li><a href="#{anchor}">{html.escape(title)}</a></li>' for anchor, title in SECTIONS)
    sections = "".join(
        f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body[anchor]}</section>' for anchor, title in SECTIONS
    )
    title = html.escape(analysis.title)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title><style>{_STYLE}</style></head>'
        f'<body><h1>{title}</h1><nav id="toc"><h2>Contents</h2><ol>{toc}</ol></nav>{sections}</body></html>\n'
    )
