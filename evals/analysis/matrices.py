"""Transfer, forgetting and format-sensitivity tables, computed from result records alone.

Every table is long (one row per cell) so that missing cells stay visible as NaN rows with a status,
instead of vanishing from a pivot or crashing a lookup (the study's notebook did both).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import pandas as pd

from evals.analysis import taskinfo
from evals.analysis.frame import checkpoint_order, plot_step
from evals.results import ResultRecord

NAN = float("nan")
FORMATS = ("default", "instruct", "io")

# A fine-tuned model's training configuration, and what it was evaluated on. The method is part of it:
# full SFT and LoRA from one checkpoint at one lr are two configurations, never one overwritten by the other.
# `prior_stages` is part of it too: a recipe's SFT stage after continual pre-training is another model than
# the plain SFT cell on the same checkpoint, dataset and lr (docs/recipes.md).
CFG_FIELDS = ("source", "mode", "base_model", "train_dataset", "train_format", "method", "lr", "prior_stages")
EVAL_FIELDS = ("eval_dataset", "eval_format", "shots", "metric")
# A base record is the partner of a fine-tuned one when all of these agree. Source is part of it on
# purpose: records from different harnesses are never compared with each other.
BASE_MATCH = ("source", "mode", "base_model", "checkpoint", "eval_dataset", "eval_format", "shots", "metric")
# Δ's confidence interval: Δ ± Z95 · √(se_base² + se_finetuned²), from each record's bootstrap standard error.
# It treats the two estimates as independent; base and fine-tuned models score the same examples, whose
# positive correlation makes the paired interval narrower, so this one errs wide.
Z95 = 1.959964
# Relative Δ is left blank where the base is this close to 0 (a base of 2e-4 turns +0.9 into +4500%).
REL_DELTA_MIN_BASE = 0.01

TRANSFER_COLUMNS = [
    "checkpoint", "train_dataset", "train_format", "lr", "eval_dataset", "eval_format", "shots",
    "base", "finetuned", "delta", "rel_delta",
    "checkpoint_step", "step", "source", "mode", "base_model", "metric", "base_std", "finetuned_std", "status",
    "method", "delta_ci_low", "delta_ci_high", "prior_stages",
]
TRANSFER_MEAN_COLUMNS = [
    "train_dataset", "train_format", "lr", "eval_dataset", "eval_format", "shots", "delta_mean", "n",
    "n_missing", "n_checkpoints", "delta_std", "rel_delta_mean", "source", "mode", "base_model", "metric", "method",
    "prior_stages",
]
FORGETTING_COLUMNS = [
    "checkpoint", "train_dataset", "train_format", "lr", "eval_dataset", "eval_format", "shots",
    "base", "finetuned", "delta", "forgetting", "chance_level", "base_at_chance", "label_artifact", "flagged",
    "checkpoint_step", "step", "source", "mode", "base_model", "metric", "status", "method",
    "delta_ci_low", "delta_ci_high", "prior_stages",
]


def _get(record: ResultRecord, fields: Sequence[str]) -> tuple:
    return tuple(getattr(record, f) for f in fields)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else NAN


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return NAN
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _num(value: float | None) -> float:
    return NAN if value is None else float(value)


def relative_delta(delta: float, base: float) -> float:
    """The study's Δ%: Δ / base × 100 (NaN where either is missing or |base| < REL_DELTA_MIN_BASE)."""
    if math.isnan(delta) or math.isnan(base) or abs(base) < REL_DELTA_MIN_BASE:
        return NAN
    return delta / base * 100.0


def transfer_table(records: Sequence[ResultRecord], main_step: int) -> pd.DataFrame:
    """Δ = fine-tuned − base for every cell of every fine-tuned configuration.

    The cells of a configuration (its CFG_FIELDS) are the checkpoints it was fine-tuned from × every
    (eval dataset, format, shots, metric) it was evaluated on at any checkpoint. A cell with no
    fine-tuned record or no base partner is a row with NaN and status `missing_finetuned` /
    `missing_base` / `missing_both`.
    """
    base_index = {_get(r, BASE_MATCH): r for r in records if r.model_kind == "base"}
    finetuned = [r for r in records if r.model_kind == "finetuned"]
    ft_index = {(_get(r, CFG_FIELDS), r.checkpoint, _get(r, EVAL_FIELDS)): r for r in finetuned}
    checkpoints: dict[tuple, dict[str, int | None]] = defaultdict(dict)
    evals: dict[tuple, set[tuple]] = defaultdict(set)
    for r in finetuned:
        cfg = _get(r, CFG_FIELDS)
        checkpoints[cfg].setdefault(r.checkpoint, r.checkpoint_step)
        evals[cfg].add(_get(r, EVAL_FIELDS))

    rows = []
    for cfg in sorted(checkpoints, key=lambda c: tuple(str(x) for x in c)):
        source, mode, base_model, train_dataset, train_format, method, lr, prior_stages = cfg
        steps = checkpoints[cfg]
        for checkpoint in checkpoint_order(steps.items(), main_step):
            for ev in sorted(evals[cfg], key=lambda e: tuple(str(x) for x in e)):
                eval_dataset, eval_format, shots, metric = ev
                ft = ft_index.get((cfg, checkpoint, ev))
                base = base_index.get((source, mode, base_model, checkpoint, eval_dataset, eval_format, shots, metric))
                base_value = NAN if base is None else float(base.value)
                ft_value = NAN if ft is None else float(ft.value)
                delta = ft_value - base_value
                base_se = NAN if base is None else _num(base.std)
                ft_se = NAN if ft is None else _num(ft.std)
                half = Z95 * math.sqrt(base_se ** 2 + ft_se ** 2)  # NaN when either is missing
                status = {(True, True): "ok", (False, True): "missing_finetuned",
                          (True, False): "missing_base", (False, False): "missing_both"}[(ft is not None, base is not None)]
                rows.append({
                    "checkpoint": checkpoint, "train_dataset": train_dataset, "train_format": train_format,
                    "lr": lr, "eval_dataset": eval_dataset, "eval_format": eval_format, "shots": shots,
                    "base": base_value, "finetuned": ft_value, "delta": delta,
                    "rel_delta": relative_delta(delta, base_value),
                    "checkpoint_step": steps[checkpoint], "step": plot_step(steps[checkpoint], main_step),
                    "source": source, "mode": mode, "base_model": base_model, "metric": metric,
                    "base_std": base_se, "finetuned_std": ft_se, "status": status, "method": method,
                    "delta_ci_low": delta - half, "delta_ci_high": delta + half, "prior_stages": prior_stages,
                })
    return pd.DataFrame(rows, columns=TRANSFER_COLUMNS).astype({"checkpoint_step": "Int64", "step": "Int64"})


def _cell_groups(transfer: pd.DataFrame, keys: Sequence[str]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in transfer.to_dict("records"):
        groups[tuple(_none(row[k]) for k in keys)].append(row)
    return groups


def _none(value):
    """pandas hands back missing object cells as NaN/NA; identity keys want None."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def transfer_mean_table(transfer: pd.DataFrame) -> pd.DataFrame:
    """The mean of Δ over checkpoints per (configuration, eval cell), with n (present) and n_missing."""
    keys = ["source", "mode", "base_model", "train_dataset", "train_format", "method", "lr", "prior_stages",
            "eval_dataset", "eval_format", "shots", "metric"]
    rows = []
    for key, cells in _cell_groups(transfer, keys).items():
        deltas = [c["delta"] for c in cells if not math.isnan(c["delta"])]
        rels = [c["rel_delta"] for c in cells if not math.isnan(c["rel_delta"])]
        row = dict(zip(keys, key, strict=True))
        row.update(delta_mean=_mean(deltas), n=len(deltas), n_missing=len(cells) - len(deltas),
                   n_checkpoints=len(cells), delta_std=_std(deltas), rel_delta_mean=_mean(rels))
        rows.append(row)
    return pd.DataFrame(rows, columns=TRANSFER_MEAN_COLUMNS)


def forgetting_table(transfer: pd.DataFrame, chance_margin: float) -> pd.DataFrame:
    """min(0, Δ) on every off-task cell, beside the base level, with the cells where it means little flagged.

    `base_at_chance`: the base scores at or below chance + `chance_margin` (nothing to forget).
    `label_artifact`: QQP/STS-B in faithful mode (all-"no" golds). `flagged`: either.
    """
    chance_cache: dict[str, float | None] = {}
    rows = []
    for row in transfer.to_dict("records"):
        if taskinfo.in_domain(row["train_dataset"], row["eval_dataset"]):
            continue
        name = row["eval_dataset"]
        if name not in chance_cache:
            chance_cache[name] = taskinfo.chance_level(name)
        chance = chance_cache[name]
        at_chance = taskinfo.at_chance(row["base"], chance, chance_margin)
        artifact = taskinfo.label_artifact(name, row["mode"], row["source"])
        delta = row["delta"]
        rows.append({
            **{k: row[k] for k in FORGETTING_COLUMNS if k in row},
            "forgetting": NAN if math.isnan(delta) else min(0.0, delta),
            "chance_level": NAN if chance is None else chance,
            "base_at_chance": at_chance, "label_artifact": artifact, "flagged": at_chance or artifact,
        })
    return pd.DataFrame(rows, columns=FORGETTING_COLUMNS).astype({"checkpoint_step": "Int64", "step": "Int64"})


def format_sensitivity_table(records: Sequence[ResultRecord], main_step: int) -> pd.DataFrame:
    """Spread (max − min over eval formats) per model and eval dataset, for fine-tuned and base models.

    A row lists the value in each format; formats seen for that eval dataset elsewhere (same source,
    mode, shots, metric) but absent for this model are counted in `n_formats_missing`. The spread
    needs at least two formats; otherwise it is NaN.
    """
    seen_formats: dict[tuple, set[str]] = defaultdict(set)
    models: dict[tuple, dict[str, ResultRecord]] = defaultdict(dict)
    for r in records:
        seen_formats[(r.source, r.mode, r.eval_dataset, r.shots, r.metric)].add(r.eval_format)
        key = (r.model_kind, *_get(r, CFG_FIELDS), r.checkpoint, r.eval_dataset, r.shots, r.metric)
        models[key][r.eval_format] = r
    all_formats = list(FORMATS) + sorted({f for fs in seen_formats.values() for f in fs} - set(FORMATS))
    rows = []
    def order(key: tuple) -> tuple:  # checkpoints by step (the final model last), not as text
        step = next(iter(models[key].values())).checkpoint_step
        return (*(str(x) for x in key[:9]), *(str(x) for x in key[10:]), step is None, step or 0, str(key[9]))

    for key in sorted(models, key=order):
        (kind, source, mode, base_model, train_dataset, train_format, method, lr, prior_stages, checkpoint,
         eval_dataset, shots, metric) = key
        by_format = models[key]
        values = [float(r.value) for r in by_format.values()]
        expected = seen_formats[(source, mode, eval_dataset, shots, metric)]
        step = next(iter(by_format.values())).checkpoint_step
        spread = max(values) - min(values) if len(values) >= 2 else NAN
        row = {
            "model_kind": kind, "checkpoint": checkpoint, "train_dataset": train_dataset,
            "train_format": train_format, "lr": lr, "eval_dataset": eval_dataset, "shots": shots,
            "n_formats": len(values), "n_formats_missing": len(expected - set(by_format)),
            "formats_missing": ",".join(sorted(expected - set(by_format))),
            "max": max(values), "min": min(values), "spread": spread,
        }
        row.update({f"value_{f}": float(by_format[f].value) if f in by_format else NAN for f in all_formats})
        row.update(checkpoint_step=step, step=plot_step(step, main_step), source=source, mode=mode,
                   base_model=base_model, metric=metric, method=method, prior_stages=prior_stages)
        rows.append(row)
    columns = ["model_kind", "checkpoint", "train_dataset", "train_format", "lr", "eval_dataset", "shots",
               "n_formats", "n_formats_missing", "formats_missing", *[f"value_{f}" for f in all_formats],
               "max", "min", "spread", "checkpoint_step", "step", "source", "mode", "base_model", "metric", "method",
               "prior_stages"]
    return pd.DataFrame(rows, columns=columns).astype({"checkpoint_step": "Int64", "step": "Int64"})


def curves_table(records: Sequence[ResultRecord], main_step: int) -> pd.DataFrame:
    """Every record as a point along pre-training (x = `step`), with its std and bootstrap CI, ordered for plotting."""
    rows = [{
        "model_kind": r.model_kind, "train_dataset": r.train_dataset, "train_format": r.train_format, "lr": r.lr,
        "eval_dataset": r.eval_dataset, "eval_format": r.eval_format, "shots": r.shots, "metric": r.metric,
        "checkpoint": r.checkpoint, "checkpoint_step": r.checkpoint_step,
        "step": plot_step(r.checkpoint_step, main_step), "value": float(r.value), "std": _num(r.std),
        "source": r.source, "mode": r.mode, "base_model": r.base_model, "method": r.method,
        "ci_low": _num(r.ci_low), "ci_high": _num(r.ci_high), "prior_stages": r.prior_stages,
        "checkpoint_tokens": _num(r.checkpoint_tokens),
    } for r in records]
    columns = ["model_kind", "train_dataset", "train_format", "lr", "eval_dataset", "eval_format", "shots",
               "metric", "checkpoint", "checkpoint_step", "step", "value", "std", "source", "mode", "base_model",
               "method", "ci_low", "ci_high", "prior_stages", "checkpoint_tokens"]
    frame = pd.DataFrame(rows, columns=columns).astype({"checkpoint_step": "Int64", "step": "Int64"})
    order = ["source", "mode", "eval_dataset", "eval_format", "shots", "model_kind", "train_dataset", "method", "step"]
    return frame.sort_values(order, na_position="first", kind="stable").reset_index(drop=True)
