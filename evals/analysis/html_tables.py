"""Tables for the report: chosen columns, numbers formatted by kind, sortable and filterable in place.

A table is a list of `Column`s over a DataFrame; each cell carries its raw number in `data-v`, so the
inline script (`TABLE_SCRIPT`, no network) sorts numbers as numbers whatever the text shows. Tables sit
in a scrolling container, so a wide one never widens the page.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from evals.analysis import formatting

# (cell text, sort value or None) for one row
Render = Callable[[dict], tuple[str, float | str | None]]


@dataclass(frozen=True)
class Column:
    """One shown column: its heading, how a row renders into it, and a tooltip."""

    heading: str
    render: Render
    title: str = ""


def _number(value: object) -> float | None:
    return None if formatting.missing(value) else float(value)  # type: ignore[arg-type]


def text(field: str, heading: str | None = None, title: str = "") -> Column:
    """A text column (labels, names)."""
    return Column(heading or field, lambda r: ("" if formatting.missing(r[field]) else str(r[field]), None), title)


def value(field: str, heading: str | None = None, title: str = "", metric_field: str | None = "metric") -> Column:
    """A metric's value, formatted by the row's metric (`metric_field` None: a fraction, 0.xxx)."""
    return Column(heading or field, lambda r: (
        formatting.value_text(r[field], r.get(metric_field) if metric_field else None), _number(r[field])), title)


def delta(field: str, heading: str | None = None, title: str = "") -> Column:
    """A signed difference."""
    return Column(heading or field, lambda r: (formatting.delta_text(r[field]), _number(r[field])), title)


def ci(low: str, high: str, heading: str = "95% CI", title: str = "") -> Column:
    """A confidence interval; sorts by its lower end."""
    return Column(heading, lambda r: (formatting.ci_text(r[low], r[high]), _number(r[low])), title)


def rel(field: str, base_field: str, heading: str = "Δ %", title: str = "") -> Column:
    """Relative Δ, blank where the base is near 0."""
    def render(r: dict) -> tuple[str, float | None]:
        shown = formatting.rel_text(r[field], r[base_field])
        return shown, _number(r[field]) if shown else None
    return Column(heading, render, title or f"Δ / base × 100; blank where |base| < {formatting.REL_DELTA_MIN_BASE}")


def lr(field: str = "lr", heading: str = "lr") -> Column:
    """A learning rate."""
    return Column(heading, lambda r: (formatting.lr_text(r[field]), _number(r[field])))


def checkpoint(label: str = "checkpoint", step: str = "checkpoint_step", heading: str = "checkpoint") -> Column:
    """A checkpoint's label, sorting by step (the final model, step unknown, last)."""
    def render(r: dict) -> tuple[str, float]:
        final, at = formatting.step_order(r[step])
        return str(r[label]), 1e18 if final else float(at)  # the final model sorts after every step
    return Column(heading, render, "sorted by pre-training step (a checkpoint without a step last)")


def count(field: str, heading: str | None = None, title: str = "") -> Column:
    """A whole number."""
    return Column(heading or field, lambda r: (formatting.count_text(r[field]), _number(r[field])), title)


def flag(field: str, heading: str | None = None, title: str = "") -> Column:
    """A yes/blank flag."""
    return Column(heading or field, lambda r: ("yes" if bool(r[field]) and not formatting.missing(r[field]) else "",
                                               1.0 if bool(r[field]) else 0.0), title)


def _cell(shown: str, sort: float | str | None) -> str:
    attr = "" if sort is None else f' data-v="{html.escape(str(sort))}"'
    return f"<td{attr}>{html.escape(shown)}</td>"


def render_table(frame: pd.DataFrame, columns: Sequence[Column], *, table_id: str, caption: str = "",
                 max_rows: int = 2000, filterable: bool | None = None) -> str:
    """A sortable table of `frame` in a scrolling container, with a filter box over long tables.

    At most `max_rows` rows are shown (the note says how many the CSV holds).
    """
    if frame.empty:
        return '<p class="note">No rows.</p>'
    shown = frame.head(max_rows)
    head = "".join(f'<th title="{html.escape(c.title)}" scope="col">{html.escape(c.heading)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(_cell(*c.render(row)) for c in columns) + "</tr>"
                   for row in shown.to_dict("records"))
    filterable = len(shown) > 15 if filterable is None else filterable
    parts = []
    if filterable:
        parts.append(f'<input class="filter" type="search" placeholder="filter rows…" data-table="{table_id}" '
                     f'aria-label="filter the rows of this table">')
    parts.append(f'<div class="table-wrap"><table class="sortable" id="{table_id}">'
                 + (f"<caption>{html.escape(caption)}</caption>" if caption else "")
                 + f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
    if len(shown) < len(frame):
        parts.append(f'<p class="note">First {len(shown)} of {len(frame)} rows; the CSV holds all of them.</p>')
    return "".join(parts)


def collapsed(summary: str, body: str, open_: bool = False) -> str:
    """A `<details>` block (closed by default)."""
    return f"<details{' open' if open_ else ''}><summary>{html.escape(summary)}</summary>{body}</details>"


# Sorting (click a heading; again to reverse; missing values stay last) and filtering (rows whose text
# holds the query). Inline and dependency-free: the report opens offline and from a copied file.
TABLE_SCRIPT = """
(function () {
  function key(row, col) {
    var cell = row.cells[col];
    if (!cell) return null;
    if (cell.hasAttribute('data-v')) { var v = parseFloat(cell.getAttribute('data-v')); return isNaN(v) ? null : v; }
    var t = cell.textContent.trim();
    return t === '' ? null : t;
  }
  function compare(a, b) {
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  function sort(table, col, th) {
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (r, i) { return [key(r, col), i, r]; });
    rows.sort(function (x, y) {
      if (x[0] === null || y[0] === null) return (x[0] === null) - (y[0] === null) || x[1] - y[1];
      return (asc ? compare(x[0], y[0]) : compare(y[0], x[0])) || x[1] - y[1];
    });
    rows.forEach(function (r) { body.appendChild(r[2]); });
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('thead th').forEach(function (th, col) {
      th.tabIndex = 0;
      th.addEventListener('click', function () { sort(table, col, th); });
      th.addEventListener('keydown', function (e) { if (e.key === 'Enter') sort(table, col, th); });
    });
  });
  document.querySelectorAll('input.filter').forEach(function (input) {
    var table = document.getElementById(input.getAttribute('data-table'));
    input.addEventListener('input', function () {
      var q = input.value.toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        r.hidden = q !== '' && r.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  });
})();
"""
