"""Learning against forgetting, per fine-tuning method and checkpoint (issue 14's question: does LoRA, or a
learned prompt, learn less and forget less than full fine-tuning, and does that change along pre-training?).

One row per (configuration, checkpoint, shots): the in-domain gain (mean Δ over the training set's own eval
sets, in its training format) with a CI, and the off-task forgetting (mean min(0, Δ) over the unflagged
off-task cells). The findings' in-domain gains per checkpoint read the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from evals.analysis import taskinfo
from evals.analysis.matrices import Z95

NAN = float("nan")
KEYS = ("source", "mode", "base_model", "shots", "train_dataset", "train_format", "lr", "method", "checkpoint",
        "prior_stages")
METHOD_COMPARISON_COLUMNS = [
    "train_dataset", "train_format", "method", "lr", "checkpoint", "shots",
    "in_domain_base", "in_domain_finetuned", "in_domain_gain", "in_domain_ci_low", "in_domain_ci_high",
    "n_in_domain", "in_domain_evals", "off_task_forgetting", "off_task_delta", "off_task_ci_low", "off_task_ci_high",
    "n_off_task", "n_off_task_flagged", "checkpoint_step", "step", "source", "mode", "base_model", "prior_stages",
]


def mean_with_ci(deltas: Sequence[float], ses: Sequence[float]) -> tuple[float, float, float]:
    """The mean of k deltas and its 95% CI, from their standard errors: se(mean) = √(Σ se²) / k.

    NaN bounds when any standard error is missing (a CI from part of the cells would read too narrow).
    """
    if not deltas:
        return NAN, NAN, NAN
    mean = sum(deltas) / len(deltas)
    half = Z95 * math.sqrt(sum(se * se for se in ses)) / len(deltas)
    return mean, mean - half, mean + half


def _none(value):
    return None if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) else value


def _delta_ses(cells: pd.DataFrame) -> list[float]:
    """Each cell's standard error of Δ, back from its CI (NaN where a record has no standard error)."""
    return [(high - low) / (2 * Z95) for low, high in zip(cells["delta_ci_low"], cells["delta_ci_high"], strict=True)]


def method_comparison_table(transfer: pd.DataFrame, forgetting: pd.DataFrame) -> pd.DataFrame:
    """In-domain gain against off-task forgetting, one row per configuration × checkpoint × shots.

    In-domain cells: the training set's own eval sets (`taskinfo.in_domain`) in the training format.
    Off-task cells: every row of the forgetting table that is not flagged (base at chance, label artifact),
    in every format. Only cells with both values count; n says how many.
    """
    ok = transfer[transfer["status"] == "ok"]
    forget_ok = forgetting[forgetting["status"] == "ok"]
    rows = []
    groups = ok.groupby(list(KEYS), dropna=False, sort=False)
    # keys normalised to None: NaN never equals NaN, so a missing lr would never find its off-task cells
    off_groups = {tuple(_none(k) for k in key): frame
                  for key, frame in forget_ok.groupby(list(KEYS), dropna=False, sort=False)}
    for raw_key, cells in groups:
        key = tuple(_none(k) for k in raw_key)
        own = cells[[taskinfo.in_domain(t, e) and f == tf for t, e, f, tf in
                     zip(cells["train_dataset"], cells["eval_dataset"], cells["eval_format"], cells["train_format"],
                         strict=True)]]
        off = off_groups.get(key)
        off = forget_ok.iloc[0:0] if off is None else off
        kept = off[~off["flagged"].astype(bool)]
        gain = mean_with_ci(list(own["delta"]), _delta_ses(own))
        off_delta = mean_with_ci(list(kept["delta"]), _delta_ses(kept))
        first = cells.iloc[0]
        row = dict(zip(KEYS, key, strict=True))
        row.update(
            in_domain_base=own["base"].mean() if len(own) else NAN,
            in_domain_finetuned=own["finetuned"].mean() if len(own) else NAN,
            in_domain_gain=gain[0], in_domain_ci_low=gain[1], in_domain_ci_high=gain[2], n_in_domain=len(own),
            in_domain_evals=",".join(sorted(set(own["eval_dataset"]))),
            off_task_forgetting=kept["forgetting"].mean() if len(kept) else NAN,
            off_task_delta=off_delta[0], off_task_ci_low=off_delta[1], off_task_ci_high=off_delta[2],
            n_off_task=len(kept), n_off_task_flagged=len(off) - len(kept),
            checkpoint_step=_none(first["checkpoint_step"]), step=first["step"],
        )
        rows.append(row)
    frame = pd.DataFrame(rows, columns=METHOD_COMPARISON_COLUMNS).astype({"checkpoint_step": "Int64", "step": "Int64"})
    order = ["source", "mode", "base_model", "shots", "train_dataset", "train_format", "method", "lr", "step"]
    return frame.sort_values(order, kind="stable", na_position="last").reset_index(drop=True)
