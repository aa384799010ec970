"""`report.html`: one self-contained page that leads with the findings, then the figures and tables, the
provenance, and the bookkeeping in an appendix.

Figures are embedded (PNG as base64), tables are sortable by an inline script, wide tables scroll inside
their own box, so the page fits a 1400 px window and works offline and when copied alone (only the links
to the CSV and PDF files beside it need the folder).
"""

from __future__ import annotations

import base64
import html

import pandas as pd

from evals.analysis import findings
from evals.analysis import formatting as fmt
from evals.analysis import html_tables as ht
from evals.analysis.provenance import Provenance
from evals.analysis.stages import stage_summary
from evals.analysis.tables import Analysis

_STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em 1.5em;max-width:1400px;color:#222;line-height:1.45;
 overflow-wrap:anywhere}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:0.2em;margin-top:1.6em}
p,li{max-width:110ch}
.table-wrap{width:fit-content;max-width:100%;overflow:auto;max-height:34em;border:1px solid #e3e3e3;margin:0.4em 0}
table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right;white-space:nowrap;overflow-wrap:normal}
td:not([data-v]){text-align:left}
th{background:#f3f3f3;position:sticky;top:0;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
caption{text-align:left;font-weight:600;padding:0.2em 0}
tbody tr:nth-child(even){background:#fafafa}
img{max-width:100%;height:auto;border:1px solid #eee;margin:0.3em 0}
figure{margin:0.6em 0}
nav{background:#fafafa;border:1px solid #ddd;padding:0.4em 1.5em;display:inline-block}
details{margin:0.5em 0}summary{cursor:pointer;font-weight:600}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:0.6em;overflow:auto;max-height:30em;white-space:pre}
input.filter{margin:0.4em 0;padding:2px 6px;width:20em;max-width:100%}
.note{color:#555;font-size:13px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:0.2em 1em}dt{font-weight:600}dd{margin:0}
"""

# (anchor, heading) in page order; the table of contents is built from this list.
SECTIONS = [
    ("findings", "Findings"),
    ("methods", "Fine-tuning methods: learning against forgetting"),
    ("stages", "Recipes: what each stage changed"),
    ("transfer", "Transfer: Δ = fine-tuned − base"),
    ("forgetting", "Forgetting: min(0, Δ) off the trained task"),
    ("format", "Format sensitivity"),
    ("curves", "Performance along pre-training"),
    ("groups", "Group averages and slopes"),
    ("provenance", "Provenance"),
    ("appendix", "Appendix: bookkeeping"),
]


def _image(name: str, png: bytes, figures: dict[str, bytes]) -> str:
    data = base64.b64encode(png).decode("ascii")
    vector = name.removesuffix(".png") + ".pdf"
    link = f' · <a href="{html.escape(vector)}">PDF</a>' if vector in figures else ""
    return (f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
            f'<figcaption class="note">{html.escape(name)}{link}</figcaption></figure>')


def _images(figures: dict[str, bytes], prefix: str, exclude: str | None = None) -> str:
    return "\n".join(_image(name, data, figures) for name, data in sorted(figures.items())
                     if name.startswith(prefix) and name.endswith(".png") and not (exclude and exclude in name))


def _transfer(analysis: Analysis, figures: dict[str, bytes]) -> str:
    mean = analysis.transfer_mean
    mean_columns = [*findings.identity_columns(mean), ht.text("eval_dataset", "eval set"), ht.text("eval_format", "eval format"),
                    ht.count("shots"), ht.delta("delta_mean", "mean Δ"), ht.count("n"), ht.count("n_missing"),
                    ht.delta("delta_std", "std of Δ"), ht.rel("rel_delta_mean", "delta_mean", "mean Δ %")]
    cells = analysis.transfer
    cell_columns = [*findings.identity_columns(cells), ht.checkpoint(), ht.text("eval_dataset", "eval set"),
                    ht.text("eval_format", "eval format"), ht.count("shots"), ht.value("base"),
                    ht.value("finetuned", "fine-tuned"), ht.delta("delta", "Δ"), ht.ci("delta_ci_low", "delta_ci_high"),
                    ht.rel("rel_delta", "base"), ht.text("status")]
    per_ckpt = _images(figures, "transfer_", exclude="transfer_mean_")
    return (_images(figures, "transfer_mean_")
            + ht.collapsed("Per-checkpoint heatmaps", per_ckpt)
            + "<h3>Mean over checkpoints (n = checkpoints with both values)</h3>"
            + ht.render_table(mean, mean_columns, table_id="t-transfer-mean", max_rows=1000)
            + ht.collapsed(f"Every cell ({len(cells)} rows, transfer.csv)",
                           ht.render_table(cells, cell_columns, table_id="t-transfer", max_rows=1000)))


def _forgetting(analysis: Analysis, figures: dict[str, bytes]) -> str:
    lost = analysis.forgetting
    lost = lost[lost["forgetting"] < 0].assign(
        why=lambda f: f["base_at_chance"].map({True: "base at chance", False: ""}).str.cat(
            f["label_artifact"].map({True: "label artifact", False: ""}), sep=" ").str.strip())
    columns = [*findings.identity_columns(lost), ht.checkpoint(), ht.text("eval_dataset", "eval set"),
               ht.text("eval_format", "eval format"), ht.count("shots"), ht.value("base"),
               ht.value("finetuned", "fine-tuned"), ht.delta("forgetting", "min(0, Δ)"),
               ht.ci("delta_ci_low", "delta_ci_high", "Δ 95% CI"), ht.text("why", "flagged")]
    return (_images(figures, "forgetting_")
            + f"<h3>Cells that lost ground (forgetting &lt; 0): {len(lost)}</h3>"
            + ht.render_table(lost, columns, table_id="t-lost", max_rows=1000))


def _format(analysis: Analysis, figures: dict[str, bytes]) -> str:
    spreads = analysis.format_sensitivity
    spreads = spreads[spreads["spread"].notna()]
    value_columns = [c for c in spreads.columns if c.startswith("value_") and spreads[c].notna().any()]
    columns = [ht.text("model_kind", "model"), ht.checkpoint(), ht.text("train_dataset", "trained on"),
               *([ht.text("method")] if findings.multi(spreads, "method") else []),
               ht.text("eval_dataset", "eval set"), ht.count("shots"),
               *[ht.value(c, c.removeprefix("value_")) for c in value_columns], ht.value("spread")]
    return (_images(figures, "format_sensitivity_")
            + "<h3>Spreads over formats (rows with at least two formats)</h3>"
            + ht.render_table(spreads, columns, table_id="t-format", max_rows=1000))


def _groups(analysis: Analysis, figures: dict[str, bytes]) -> str:
    groups = analysis.groups
    columns = [ht.text("group"), ht.checkpoint(), ht.delta("delta_mean", "mean Δ"), ht.count("n"),
               ht.count("n_pairs"), _slope_column(), ht.text("mode"), ht.count("shots"),
               ht.text("train_format", "train format"), ht.text("eval_format", "eval format"),
               *([ht.text("method")] if findings.multi(groups, "method") else [])]
    return (_images(figures, "groups")
            + ht.collapsed(f"Group table ({len(groups)} rows, groups.csv)",
                           ht.render_table(groups, columns, table_id="t-groups", max_rows=1000)))


def _slope_column() -> ht.Column:
    """The group slope: Δ̄ change per 100k pre-training steps."""
    return ht.Column("slope /100k", lambda r: (fmt.delta_text(r["slope"]), None if fmt.missing(r["slope"])
                                               else float(r["slope"])), "(Δ̄ now − Δ̄ before) per 100k steps")


def _provenance(prov: Provenance | None, analysis: Analysis) -> str:
    if prov is None:
        return "<p>Not recorded.</p>"
    def joined(values) -> str:
        return ", ".join(str(v) for v in values) or "not recorded"
    facts = [("ptft", f"{prov.ptft_version}" + (f", commit {prov.git_commit}" if prov.git_commit
                                                 else " (commit unknown: not a git checkout)")),
             ("analysed", prov.created), ("record sources", joined(prov.record_sources)),
             ("eval data source", joined(prov.data_sources)), ("engine versions", joined(prov.engine_versions)),
             ("bootstrap seeds", joined(prov.bootstrap_seeds)), ("bootstrap resamples", joined(prov.bootstrap_resamples)),
             ("few-shot seeds", joined(prov.fewshot_seeds)), ("bands and CIs", prov.band)]
    plan = prov.plan
    if plan:
        facts += [("plan", f"{plan.get('name')} (plan_version {plan.get('plan_version')}): {plan.get('cells')} cells, "
                           f"{plan.get('trials')} trials, {plan.get('eval_jobs')} eval jobs ({plan.get('file')})"),
                  ("training seeds", joined(plan.get("train_seeds", []))),
                  ("learning rates", "; ".join(f"{k}: {', '.join(fmt.lr_text(v) for v in vs)}"
                                                for k, vs in plan.get("lrs", {}).items()) or "not recorded")]
        if plan.get("methods"):
            facts.append(("methods (plan)", joined(plan["methods"])))
    facts.append(("methods (records)", joined(analysis.methods) if analysis.methods else "no fine-tuned records"))
    body = "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts) + "</dl>"
    if prov.inputs:
        body += "<h3>Inputs</h3><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in prov.inputs) + "</ul>"
    n_table = pd.DataFrame(list(prov.n_per_eval), columns=["source", "mode", "eval_dataset", "n"])
    body += "<h3>n per eval set (examples scored)</h3>" + ht.render_table(
        n_table, [ht.text("source"), ht.text("mode"), ht.text("eval_dataset", "eval set"), ht.text("n")],
        table_id="t-n", filterable=False)
    body += ("<h3>Spec</h3><pre>" + html.escape(prov.spec_yaml) + "</pre>" if prov.spec_yaml
             else "<p class=\"note\">No spec given (pass <code>--spec FILE</code> to <code>ptft analyze</code>).</p>")
    return body + _how_to_read(analysis)


def _how_to_read(analysis: Analysis) -> str:
    shots = ", ".join(f"{s}: {k}-shot" for s, k in sorted(analysis.primary_shots.items())) or "none"
    final = any(r.checkpoint_step is None for r in analysis.records)
    final_text = (" The final model (step unknown) sits apart on the figures' step axes, right of the dotted "
                  f"rule and never joined to the curve; in the CSVs its <code>step</code> is {analysis.main_step}."
                  if final else "")
    return (
        "<h3>How the numbers are made</h3>"
        f"<p>Figures and findings use each source's most common shot count ({html.escape(shots)}); the CSVs hold "
        "every shot count. A fine-tuned record's base is the base record with the same source, mode, base model, "
        "checkpoint, eval dataset, format, shots and metric (sources from different harnesses are never paired). "
        f"Relative Δ is Δ / base × 100, left blank where |base| &lt; {fmt.REL_DELTA_MIN_BASE}. A forgetting cell is "
        f"flagged when the base scores at or below chance + {analysis.chance_margin} (chance from the task "
        "registry) or is the QQP/STS-B faithful-mode label artifact. Accuracy and ROUGE-L are on separate colour "
        f"scales in the heatmaps.{final_text}</p>")


def _appendix(analysis: Analysis, figures: dict[str, bytes]) -> str:
    counts = pd.DataFrame(sorted(analysis.counts.items()), columns=["count", "value"])
    notes = ("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in analysis.notes) + "</ul>"
             if analysis.notes else "<p>None.</p>")
    files = sorted([f"{stem}.csv" for stem in analysis.tables()] + list(figures))
    links = "<ul>" + "".join(f'<li><a href="{html.escape(f)}">{html.escape(f)}</a></li>' for f in files) + "</ul>"
    return ("<h3>Counts</h3><p>Missing cells are NaN rows in the CSVs, never dropped; these counts say how many "
            "there are.</p>" + ht.render_table(counts, [ht.text("count"), ht.count("value")], table_id="t-counts",
                                                filterable=False)
            + "<h3>Import notes</h3>" + notes
            + "<h3>Files</h3><p class=\"note\">The links are relative to this page: they work inside the analysis "
              "folder, not when report.html is copied alone (its figures are embedded and travel with it).</p>"
            + ht.collapsed(f"{len(files)} files", links))


def _stages(analysis: Analysis, figures: dict[str, bytes]) -> str:
    """Each recipe stage's model against the base and against the stage before it (docs/recipes.md)."""
    summary = stage_summary(analysis.stages)
    intro = ("<p>Every model a recipe trained, per checkpoint: the mean Δ over all eval cells against the base "
             "checkpoint and against the stage before it (for a first stage the two are the same), and the eval "
             "set the stage moved most against the stage before. The full table is <code>stages.csv</code>.</p>")
    columns = [ht.text("lineage", "stages"), ht.checkpoint(), ht.text("objective"),
               ht.delta("mean_delta_vs_base", "mean Δ vs base"), ht.delta("mean_delta_vs_parent", "mean Δ vs stage before"),
               ht.text("most_moved_eval", "moved most"), ht.delta("most_moved_delta", "its Δ vs stage before"),
               ht.count("n", "eval cells")]
    cells = analysis.stages
    detail = [ht.text("lineage", "stages"), ht.checkpoint(), ht.text("eval_dataset", "eval"),
              ht.text("eval_format", "format"), ht.value("base"), ht.value("parent_value", "stage before"),
              ht.value("value", "this stage"), ht.delta("delta_vs_base", "Δ vs base"),
              ht.delta("delta_vs_parent", "Δ vs stage before")]
    training = ""
    if not analysis.stage_training.empty:
        shown = [c for c in ("val_ppl_before", "val_ppl", "old_ppl_before", "old_ppl", "reward_accuracy", "margin",
                            "kept_fraction", "mean_best_score")
                 if c in analysis.stage_training and analysis.stage_training[c].notna().any()]
        rewards = ([ht.text("reward")] if "reward" in analysis.stage_training
                   and analysis.stage_training["reward"].notna().any() else [])
        training = ("<h3>Each stage on its own held-out data</h3><p>The winning lr's final metrics: perplexity "
                    "on the new corpus (val_ppl) and on the old one (old_ppl) for continual pre-training, each beside the "
                    "input model's (_before); reward "
                    "accuracy (chosen margin &gt; 0; 0.5 is chance) and the mean margin on held-out pairs for DPO; the "
                    "fraction of prompts kept and the mean best reward for rejection sampling (a metric in [0, 1], or a "
                    "reward model's score on its own scale: the reward column names which)."
                    "</p>" + ht.render_table(analysis.stage_training,
                                             [ht.text("lineage", "stages"), ht.checkpoint(), ht.text("objective"),
                                              ht.lr(), *[ht.value(c, metric_field=None) for c in shown], *rewards],
                                             table_id="t-stage-training"))
    return (intro + training + _images(figures, "stages_") + ht.render_table(summary, columns, table_id="t-stages")
            + ht.collapsed("Every eval cell of every stage",
                           ht.render_table(cells, detail, table_id="t-stage-cells")))


def render_report(analysis: Analysis, figures: dict[str, bytes]) -> str:
    """The HTML report for `analysis`, embedding the PNGs of `figures` (file name -> bytes)."""
    body: dict[str, str | None] = {
        "findings": ("<h3>In-domain gain per training set</h3>" + findings.in_domain_gain(analysis)
                     + "<h3>Transfer and forgetting off the trained task</h3>"
                     + findings.transfers_and_forgetting(analysis)
                     + "<h3>Format sensitivity along pre-training</h3>" + findings.format_sensitivity(analysis)
                     + "<h3>Fine-tuning methods</h3>" + findings.methods(analysis)),
        # only where two methods ran: a single-method grid's page stays as it was
        "methods": (_images(figures, "method_comparison_") + findings.method_table(analysis)
                    if len(analysis.methods) > 1 else None),
        "stages": (_stages(analysis, figures) if not (analysis.stages.empty and analysis.stage_training.empty)
                   else None),
        "transfer": _transfer(analysis, figures),
        "forgetting": _forgetting(analysis, figures),
        "format": _format(analysis, figures),
        "curves": _images(figures, "curves_"),
        "groups": _groups(analysis, figures),
        "provenance": _provenance(analysis.provenance, analysis),
        "appendix": _appendix(analysis, figures),
    }
    shown = [(anchor, title) for anchor, title in SECTIONS if body[anchor] is not None]
    toc = "".join(f'<li><a href="#{anchor}">{html.escape(title)}</a></li>' for anchor, title in shown)
    sections = "".join(
        f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body[anchor]}</section>' for anchor, title in shown)
    title = html.escape(analysis.title)
    subtitle = (f"{len(analysis.records)} result records ({analysis.counts.get('records_base', 0)} base, "
                f"{analysis.counts.get('records_finetuned', 0)} fine-tuned)")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        f'<style>{_STYLE}</style></head><body><h1>{title}</h1><p class="note">{html.escape(subtitle)}</p>'
        f'<nav id="toc"><h2>Contents</h2><ol>{toc}</ol></nav>{sections}'
        f"<script>{ht.TABLE_SCRIPT}</script></body></html>\n"
    )
