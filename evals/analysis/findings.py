"""The findings the report leads with, written from the tables: the in-domain gain per training set and
checkpoint, the largest transfers and the largest forgetting, format sensitivity along pre-training, and
the methods side by side. Every sentence is built from numbers in the analysis; none is canned.

Each function returns an HTML fragment (sentences, then a small sortable table); all of them read each
source at its primary shot count, as the figures do.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

from evals.analysis import formatting as fmt
from evals.analysis import html_tables as ht
from evals.analysis.tables import Analysis

TOP = 5  # cells listed as the largest transfers and the largest forgetting
FLAT = 0.01  # a change smaller than this reads as "about the same"


def at_primary_shots(frame: pd.DataFrame, analysis: Analysis) -> pd.DataFrame:
    """The rows of each source at its primary shot count (what the figures show)."""
    if frame.empty:
        return frame
    keep = frame["source"].map(analysis.primary_shots) == frame["shots"]
    return frame[keep.fillna(False).astype(bool)]


def multi(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and frame[column].nunique(dropna=False) > 1


def by_step(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in pre-training order (the final model last)."""
    return frame.sort_values("checkpoint_step", key=lambda s: s.map(fmt.step_order), kind="stable")


def _config_label(row: dict, show_method: bool, show_lr: bool, show_source: bool) -> str:
    text = f"{row['train_dataset']} ({row['train_format']})"
    if show_method:
        text += f", {row['method']}"
    if show_lr:
        text += f", lr {fmt.lr_text(row['lr'])}"
    if show_source:
        text += f" [{row['source']}, {row['mode']}]"
    return text


def _excludes_zero(low: object, high: object) -> bool:
    return not (fmt.missing(low) or fmt.missing(high)) and (float(low) > 0 or float(high) < 0)  # type: ignore[arg-type]


def ci_note(lows: pd.Series, highs: pd.Series, what: str) -> str:
    """How many of these CIs exclude 0, counting only cells that have one (a source may give no error)."""
    pairs = [(lo, hi) for lo, hi in zip(lows, highs, strict=True) if not (fmt.missing(lo) or fmt.missing(hi))]
    if not pairs:
        return "no CI: the source gives no standard error"
    text = f"the CI excludes 0 for {sum(_excludes_zero(lo, hi) for lo, hi in pairs)} of {len(pairs)} {what}"
    return text + (f" ({len(lows) - len(pairs)} without a CI)" if len(pairs) < len(lows) else "")


def identity_columns(frame: pd.DataFrame) -> list[ht.Column]:
    """The training configuration's columns: dataset and format, plus method, lr, source where they vary."""
    columns = [ht.text("train_dataset", "trained on"), ht.text("train_format", "train format")]
    if multi(frame, "method"):
        columns.append(ht.text("method"))
    if multi(frame, "lr"):
        columns.append(ht.lr())
    if multi(frame, "source") or multi(frame, "mode"):
        columns += [ht.text("source"), ht.text("mode")]
    return columns


def in_domain_gain(analysis: Analysis) -> str:
    """Per training set: base → fine-tuned on its own eval sets (in its training format), per checkpoint."""
    table = at_primary_shots(analysis.method_comparison, analysis)
    table = table[table["n_in_domain"] > 0] if len(table) else table
    if table.empty:
        return "<p>No fine-tuned model has both values on its own eval set, so there is no in-domain gain to report.</p>"
    flags = (multi(table, "method"), multi(table, "lr"), multi(table, "source") or multi(table, "mode"))
    sentences = []
    keys = ["source", "mode", "base_model", "train_dataset", "train_format", "method", "lr", "prior_stages"]
    for _, rows in table.groupby(keys, sort=True, dropna=False):
        rows = by_step(rows)
        first = rows.iloc[0].to_dict()
        steps = "; ".join(
            f"{r['checkpoint']}: {fmt.value_text(r['in_domain_base'])} → {fmt.value_text(r['in_domain_finetuned'])} "
            f"({_with_ci(r['in_domain_gain'], r['in_domain_ci_low'], r['in_domain_ci_high'])})"
            for r in rows.to_dict("records"))
        text = (f"<b>{html.escape(_config_label(first, *flags))}</b> on {html.escape(first['in_domain_evals'])}: "
                f"{html.escape(steps)}.")
        if len(rows) > 1:
            text += " " + _extremes(rows, "in_domain_gain", "gain")
        note = ci_note(rows["in_domain_ci_low"], rows["in_domain_ci_high"], "checkpoints")
        text += f" {note[0].upper()}{note[1:]}."
        sentences.append(f"<li>{text}</li>")
    columns = [*identity_columns(table), ht.checkpoint(), ht.text("in_domain_evals", "own eval sets"),
               ht.value("in_domain_base", "base", metric_field=None),
               ht.value("in_domain_finetuned", "fine-tuned", metric_field=None),
               ht.delta("in_domain_gain", "gain"), ht.ci("in_domain_ci_low", "in_domain_ci_high")]
    return ("<p>Gain = fine-tuned − base on the training set's own eval sets in its training format "
            "(mean over them where there are several), with its 95% CI.</p>"
            f"<ul>{''.join(sentences)}</ul>" + ht.render_table(table, columns, table_id="t-in-domain"))


def _extremes(rows: pd.DataFrame, column: str, what: str) -> str:
    """Where along pre-training `column` is largest and smallest (ties named together, flat said so)."""
    values = rows[column].astype(float)
    if values.max() - values.min() < FLAT:
        return f"The {what} is about the same at every checkpoint (range {fmt.value_text(values.max() - values.min())})."
    def at(target: float) -> str:
        names = [str(c) for c, v in zip(rows["checkpoint"], values, strict=True) if abs(v - target) < 1e-12]
        return html.escape(" and ".join(names))
    return f"The {what} is largest at {at(values.max())} and smallest at {at(values.min())}."


def _cell_columns(frame: pd.DataFrame) -> list[ht.Column]:
    return [*identity_columns(frame), ht.text("eval_dataset", "eval set"), ht.text("eval_format", "eval format"),
            ht.checkpoint(), ht.value("base"), ht.value("finetuned", "fine-tuned"), ht.delta("delta", "Δ"),
            ht.ci("delta_ci_low", "delta_ci_high")]


def _cell_sentence(row: dict, frame: pd.DataFrame) -> str:
    who = row["train_dataset"] + (f" ({row['method']})" if multi(frame, "method") else "")
    return (f"{who} → {row['eval_dataset']} [{row['eval_format']}] at {row['checkpoint']}: "
            f"{fmt.value_text(row['base'], row['metric'])} → {fmt.value_text(row['finetuned'], row['metric'])} "
            f"({_with_ci(row['delta'], row['delta_ci_low'], row['delta_ci_high'])})")


def _with_ci(delta: object, low: object, high: object) -> str:
    """+0.200 [+0.187, +0.213], or just +0.200 where there is no CI."""
    return " ".join(part for part in (fmt.delta_text(delta), fmt.ci_text(low, high)) if part)


def transfers_and_forgetting(analysis: Analysis) -> str:
    """The largest off-task gains and the largest off-task losses, each with its CI."""
    cells = at_primary_shots(analysis.forgetting, analysis)
    cells = cells[cells["status"] == "ok"] if len(cells) else cells
    if cells.empty:
        return "<p>No off-task cell has both a base and a fine-tuned value.</p>"
    gains = cells[cells["delta"] > 0].sort_values("delta", ascending=False, kind="stable").head(TOP)
    kept = cells[~cells["flagged"].astype(bool)]
    losses = kept[kept["delta"] < 0].sort_values("delta", kind="stable").head(TOP)
    n_flagged = int(cells["flagged"].astype(bool).sum())
    parts = []
    if len(gains):
        note = ci_note(gains["delta_ci_low"], gains["delta_ci_high"], "cells")
        parts.append(f"<p><b>Largest transfers</b> (off-task Δ &gt; 0; {note}): "
                     f"{html.escape(_cell_sentence(gains.iloc[0].to_dict(), cells))}.</p>"
                     + ht.render_table(gains, _cell_columns(gains), table_id="t-transfers", filterable=False))
    else:
        parts.append("<p><b>No off-task cell gained</b> from fine-tuning.</p>")
    if len(losses):
        note = ci_note(losses["delta_ci_low"], losses["delta_ci_high"], "cells")
        parts.append(f"<p><b>Largest forgetting</b> (off-task Δ &lt; 0, {n_flagged} flagged cells left out: base at "
                     f"chance or label artifact; {note}): "
                     f"{html.escape(_cell_sentence(losses.iloc[0].to_dict(), cells))}.</p>"
                     + ht.render_table(losses, _cell_columns(losses), table_id="t-forgetting", filterable=False))
    else:
        parts.append(f"<p><b>No unflagged off-task cell lost ground</b> ({n_flagged} flagged cells left out).</p>")
    return "".join(parts)


def _trend(values: Sequence[float]) -> str:
    change = values[-1] - values[0]
    if abs(change) < FLAT:
        return "stays about the same"
    return "grows" if change > 0 else "shrinks"


def format_sensitivity(analysis: Analysis) -> str:
    """How the spread over eval formats moves along pre-training, for base and fine-tuned models."""
    spreads = at_primary_shots(analysis.format_sensitivity, analysis)
    spreads = spreads[spreads["spread"].notna()] if len(spreads) else spreads
    if spreads.empty:
        return "<p>No model was evaluated in two or more formats, so format sensitivity is not measured.</p>"
    spreads = spreads.assign(model=spreads["model_kind"].where(
        spreads["model_kind"] == "base",
        "fine-tuned" + (" (" + spreads["method"] + ")" if multi(spreads[spreads["model_kind"] == "finetuned"],
                                                             "method") else "")))
    means = (spreads.groupby(["source", "mode", "model", "checkpoint"], dropna=False, sort=False)
             .agg(spread=("spread", "mean"), n=("spread", "size"), checkpoint_step=("checkpoint_step", "first"))
             .reset_index())
    sentences = []
    for (source, mode, model), rows in means.groupby(["source", "mode", "model"], sort=True, dropna=False):
        rows = by_step(rows)
        where = f" [{source}, {mode}]" if multi(means, "source") or multi(means, "mode") else ""
        path = " → ".join(f"{fmt.value_text(s)} ({c})" for s, c in zip(rows["spread"], rows["checkpoint"], strict=True))
        trend = f"; it {_trend(list(rows['spread']))} along pre-training" if len(rows) > 1 else ""
        sentences.append(f"<li><b>{html.escape(model)}</b>{html.escape(where)}: mean spread {html.escape(path)}"
                         f"{trend} (over {int(rows['n'].max())} eval sets at most).</li>")
    return ("<p>Spread = max − min score over the eval formats of one model and eval set, averaged over eval "
            f"sets.</p><ul>{''.join(sentences)}</ul>")


def methods(analysis: Analysis) -> str:
    """Each method against the reference (full, when present): gain and forgetting, and whether the gap moves."""
    table = at_primary_shots(analysis.method_comparison, analysis)
    names = sorted(set(table["method"]), key=lambda m: (m != "full", m)) if len(table) else []
    if len(names) < 2:
        return (f"<p>One fine-tuning method in these records ({html.escape(', '.join(names) or 'none')}); "
                "a method comparison needs two.</p>")
    reference = names[0]
    sentences = []
    # within one lineage: a recipe's stage is compared with its own kind, never with the plain cell
    keys = ["train_dataset", "train_format", *(["prior_stages"] if "prior_stages" in table else [])]
    for (train_dataset, train_format, *_), rows in table.groupby(keys, sort=True, dropna=False):
        ref = by_step(rows[rows["method"] == reference])
        for method in names[1:]:
            other = by_step(rows[rows["method"] == method])
            both = sorted(set(ref["checkpoint"]) & set(other["checkpoint"]))
            if not both:
                continue
            r = ref[ref["checkpoint"].isin(both)]
            o = other[other["checkpoint"].isin(both)]
            gain_r, gain_o = r["in_domain_gain"].mean(), o["in_domain_gain"].mean()
            lost_r, lost_o = -r["off_task_forgetting"].mean(), -o["off_task_forgetting"].mean()
            learns = "learns less" if gain_o < gain_r - FLAT else "learns more" if gain_o > gain_r + FLAT else \
                "learns about as much"
            forgets = "forgets less" if lost_o < lost_r - FLAT else "forgets more" if lost_o > lost_r + FLAT else \
                "forgets about as much"
            text = (f"<b>{html.escape(train_dataset)} ({html.escape(train_format)})</b>: {html.escape(method)} "
                    f"{learns} and {forgets} than {html.escape(reference)}, over {len(both)} checkpoint(s): gain "
                    f"{fmt.delta_text(gain_o)} vs {fmt.delta_text(gain_r)}, off-task forgetting "
                    f"{fmt.value_text(lost_o)} vs {fmt.value_text(lost_r)}.")
            gaps = [float(og) - float(rg) for og, rg in zip(o["in_domain_gain"], r["in_domain_gain"], strict=True)]
            if len(gaps) > 1:
                text += (f" The gain gap ({html.escape(method)} − {html.escape(reference)}) goes from "
                         f"{fmt.delta_text(gaps[0])} at {html.escape(str(o['checkpoint'].iloc[0]))} to "
                         f"{fmt.delta_text(gaps[-1])} at {html.escape(str(o['checkpoint'].iloc[-1]))}.")
            sentences.append(f"<li>{text}</li>")
    return ("<p>Per training set and checkpoint: the in-domain gain against the off-task forgetting "
            "(−mean min(0, Δ) over unflagged off-task cells; higher = more lost), method by method.</p>"
            f"<ul>{''.join(sentences) or '<li>No checkpoint has two methods side by side.</li>'}</ul>")


def method_table(analysis: Analysis) -> str:
    """method_comparison.csv as a sortable table."""
    table = analysis.method_comparison
    columns = [*identity_columns(table), ht.checkpoint(), ht.count("shots"),
               ht.delta("in_domain_gain", "in-domain gain"), ht.ci("in_domain_ci_low", "in_domain_ci_high"),
               ht.count("n_in_domain", "n own"), ht.delta("off_task_forgetting", "off-task min(0, Δ)"),
               ht.delta("off_task_delta", "off-task Δ"), ht.ci("off_task_ci_low", "off_task_ci_high", "Δ 95% CI"),
               ht.count("n_off_task", "n off-task"), ht.count("n_off_task_flagged", "n flagged")]
    if not multi(table, "method") and "method" in table:
        columns.insert(2, ht.text("method"))  # the table is about methods: always name it
    return ht.render_table(table, columns, table_id="t-methods")
