"""Write one analysis into a folder: the CSVs, the figures (PNG and PDF) and `report.html`."""

from __future__ import annotations

from evals.analysis import plots, report
from evals.analysis.tables import Analysis
from ptft.core import storage


def write_outputs(analysis: Analysis, out_dir: str, figures: dict[str, bytes] | None = None) -> dict[str, str]:
    """Write the CSVs, the figures and `report.html` into `out_dir` (local or s3://, gs://), each atomically.

    Returns file name -> path. The report is written last, so a present report means a complete folder.
    """
    storage.makedirs(out_dir)
    written: dict[str, str] = {}
    for stem, table in analysis.tables().items():
        path = storage.join(out_dir, f"{stem}.csv")
        storage.atomic_write_text(path, table.to_csv(index=False))
        written[f"{stem}.csv"] = path
    figures = plots.all_figures(analysis) if figures is None else figures
    for name, data in figures.items():
        path = storage.join(out_dir, name)
        storage.atomic_write_bytes(path, data)
        written[name] = path
    path = storage.join(out_dir, "report.html")
    storage.atomic_write_text(path, report.render_report(analysis, figures))
    written["report.html"] = path
    return written
