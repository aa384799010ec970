"""Recipes: what each stage changed (docs/recipes.md).

Every model a recipe trained has a lineage (`continual_pt:news>sft:mnli/default`): its own stage after the
stages before it (`ResultRecord.prior_stages`). The stage table puts each such model's score on every eval
cell beside the base checkpoint's and the stage before's (its parent: the model whose lineage is its
`prior_stages`; the base for a first stage), so "what DPO did to the MNLI accuracy SFT taught" is one
row. Models trained in one plain SFT stage are not here unless a later stage started from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from evals.analysis import taskinfo
from evals.results import ResultRecord, lineage

NAN = float("nan")
STAGE_COLUMNS = [
    "base_model", "checkpoint", "lineage", "stage", "objective", "train_dataset", "parent", "eval_dataset",
    "eval_format", "shots", "metric", "base", "parent_value", "value", "delta_vs_base", "delta_vs_parent",
    "own_eval", "checkpoint_step", "source", "mode",
]


def stage_table(records: Sequence[ResultRecord]) -> pd.DataFrame:
    """One row per (recipe model, eval cell): its value, the base's and the stage before's, and both Δs."""
    index: dict[tuple, ResultRecord] = {}
    chained: set[tuple] = set()  # (source, mode, base_model, checkpoint, lineage) of recipe models
    for r in records:
        line = lineage(r)
        index[(r.source, r.mode, r.base_model, r.checkpoint, line, r.eval_dataset, r.eval_format, r.shots,
               r.metric)] = r
        if r.prior_stages is not None or (r.model_kind == "finetuned" and r.objective != "sft"):
            chained.add((r.source, r.mode, r.base_model, r.checkpoint, line))
            for parent in _prefixes(r.prior_stages):  # every stage before it belongs to the chain too
                chained.add((r.source, r.mode, r.base_model, r.checkpoint, parent))
    rows = []
    for key, r in index.items():
        source, mode, base_model, checkpoint, line, eval_dataset, eval_format, shots, metric = key
        if line is None or (source, mode, base_model, checkpoint, line) not in chained:
            continue
        rest = (eval_dataset, eval_format, shots, metric)
        base = index.get((source, mode, base_model, checkpoint, None, *rest))
        parent = index.get((source, mode, base_model, checkpoint, r.prior_stages, *rest))
        value = float(r.value)
        base_value = NAN if base is None else float(base.value)
        parent_value = base_value if r.prior_stages is None else (NAN if parent is None else float(parent.value))
        rows.append({
            "base_model": base_model, "checkpoint": checkpoint, "lineage": line, "stage": line.count(">") + 1,
            "objective": r.objective, "train_dataset": r.train_dataset, "parent": r.prior_stages or "base",
            "eval_dataset": eval_dataset, "eval_format": eval_format, "shots": shots, "metric": metric,
            "base": base_value, "parent_value": parent_value, "value": value,
            "delta_vs_base": value - base_value, "delta_vs_parent": value - parent_value,
            "own_eval": bool(r.train_dataset and taskinfo.in_domain(r.train_dataset, eval_dataset)),
            "checkpoint_step": r.checkpoint_step, "source": source, "mode": mode,
        })
    frame = pd.DataFrame(rows, columns=STAGE_COLUMNS).astype({"checkpoint_step": "Int64"})
    order = ["source", "mode", "base_model", "lineage", "checkpoint_step", "checkpoint", "eval_dataset", "eval_format"]
    return frame.sort_values(order, na_position="last", kind="stable").reset_index(drop=True)


def _prefixes(prior: str | None) -> list[str]:
    if not prior:
        return []
    parts = prior.split(">")
    return [">".join(parts[:i]) for i in range(1, len(parts) + 1)]


def stage_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (lineage, checkpoint): mean Δ against the base and against the stage before, over all eval cells,
    and the eval cell the stage moved most (its largest drop, or else its largest gain, against the stage before)."""
    rows = []
    if table.empty:
        return pd.DataFrame(rows)
    keys = ["source", "mode", "base_model", "lineage", "checkpoint"]
    for key, cells in table.groupby(keys, sort=False, dropna=False):
        moved = cells.dropna(subset=["delta_vs_parent"])
        worst = moved.loc[moved["delta_vs_parent"].idxmin()] if len(moved) else None
        rows.append({**dict(zip(keys, key, strict=True)), "stage": int(cells["stage"].iloc[0]),
                     "objective": cells["objective"].iloc[0], "parent": cells["parent"].iloc[0],
                     "checkpoint_step": cells["checkpoint_step"].iloc[0],
                     "mean_delta_vs_base": _mean(cells["delta_vs_base"]),
                     "mean_delta_vs_parent": _mean(cells["delta_vs_parent"]),
                     "most_moved_eval": None if worst is None else worst["eval_dataset"],
                     "most_moved_delta": NAN if worst is None else float(worst["delta_vs_parent"]),
                     "n": len(cells)})
    return pd.DataFrame(rows)


def _mean(values: pd.Series) -> float:
    kept = [float(v) for v in values if not (isinstance(v, float) and math.isnan(v))]
    return sum(kept) / len(kept) if kept else NAN


# What a stage's own held-out data says about its winner (the trial manifest's final metrics): the new
# domain's and the old domain's perplexity for continual pre-training, reward accuracy and margin for DPO.
TRAINING_METRICS = ("val_loss", "val_ppl", "old_ppl", "reward_accuracy", "margin")


def stage_training_table(storage_path: str) -> pd.DataFrame:
    """Per recipe cell of a grid (plan.json), its winner's lr and held-out training metrics; empty when the
    grid has no recipes or no plan."""
    from evals.results import stage_name
    from ptft.core import storage
    from ptft.core.layout import GridLayout

    layout = GridLayout(storage_path)
    if not storage.exists(layout.plan_file):
        return pd.DataFrame()
    rows = []
    for cell in storage.read_json(layout.plan_file).get("cells", []):
        objective = (cell.get("objective") or {}).get("kind", "sft")
        if cell.get("rejection"):  # SFT on a rejection-sampled set (docs/rejection_sampling.md)
            objective = "rejection_sampling"
        if not cell.get("recipes") or (objective == "sft" and not cell.get("prior_stages")
                                        and cell.get("plain", True)):
            continue
        path = layout.selection_file(cell["cell_id"])
        if not storage.exists(path):
            continue
        winner = storage.read_json(path).get("winner", {})
        manifest_path = layout.trial(winner.get("trial_id", "")).manifest
        manifest = storage.read_json(manifest_path) if storage.exists(manifest_path) else {}
        metrics = manifest.get("metrics", {})
        before = manifest.get("data", {}).get("before", {})  # the input model's, where the stage measures it
        own = stage_name(objective, cell["train_dataset"], cell["train_format"],
                         (cell.get("method") or {}).get("label", "full"))
        prior = cell.get("prior_stages")
        rows.append({"lineage": f"{prior}>{own}" if prior else own, "checkpoint": cell["checkpoint"],
                     "checkpoint_step": cell.get("checkpoint_step"), "objective": objective,
                     "lr": winner.get("lr"), **{name: metrics.get(name) for name in TRAINING_METRICS},
                     **{f"{name}_before": before.get(name) for name in ("val_ppl", "old_ppl")},
                     **_sampled(layout, cell)})
    return pd.DataFrame(rows)


def _sampled(layout, cell: dict) -> dict:
    """A rejection_sampling cell's kept fraction, mean best reward and what scored it (its stage folder's
    summary.json)."""
    from ptft.core import storage

    path = storage.join(layout.stage_data(cell["cell_id"]), "summary.json")
    summary = storage.read_json(path) if cell.get("rejection") and storage.exists(path) else {}
    reward = summary.get("config", {}).get("reward")
    return {"kept_fraction": summary.get("kept_fraction"), "mean_best_score": summary.get("mean_best_score"),
            # the metric's name, or the reward model's id (its scores are on its own scale)
            "reward": reward.get("model") if isinstance(reward, dict) else reward}
