"""The study's group averages of Δ over (eval dataset, train dataset) pairs, and their slopes.

Pairs are (eval dataset, training dataset), in the registry's names (docs/study.md §6). The official
multiple-choice table's `sciq` is the registry's `sciq_mc`; the SFT side's `sciq` is question generation.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pandas as pd

from evals.analysis import taskinfo
from evals.analysis.frame import checkpoint_order

GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    # Findings 2: abilities learned in fine-tuning vs abilities already learned in pre-training.
    "learned_in_ft": (("mnli_matched", "mnli"), ("paws", "paws"), ("xsum", "xsum"), ("mnli_mismatched", "mnli"),
                      ("xlsum", "xsum"), ("socialiqa", "socialiqa"), ("boolq", "tulu")),
    "learned_in_pt": (("sciq_mc", "tulu"), ("hellaswag", "tulu"), ("arc_challenge", "tulu"),
                      ("arc_easy", "tulu"), ("openbookqa", "tulu")),
    # Fig 6: cross-task transfer.
    "class_to_gen": (("xsum", "mnli"), ("socialiqa", "mnli"), ("xsum", "paws"), ("socialiqa", "paws")),
    "gen_to_class": (("paws", "xsum"), ("mnli_matched", "xsum"), ("mnli_matched", "socialiqa"),
                     ("paws", "socialiqa")),
    # Fig 7: cross-domain transfer within a task.
    "cross_domain_nli": (("rte", "mnli"), ("gpt3nli", "mnli")),
    "cross_domain_summ": (("cnn", "xsum"),),
    "cross_domain_qgen": (("tweetqa", "socialiqa"), ("sciq", "socialiqa")),
    "cross_domain_para": (("qqp", "paws"), ("stsb", "paws")),
}

# Groups are averaged within one partition: pooling 0-shot with 4-shot, or faithful with fixed, would mix
# incomparable numbers. Sources and learning rates are pooled (the study pools xsum's 2e-7 with the
# others' 2e-6, and its MC pairs come from the official table).
# Methods are never pooled either: a group's Δ̄ under LoRA is its own curve beside full SFT's.
PARTITION = ("mode", "base_model", "shots", "train_format", "eval_format", "method", "prior_stages")
GROUP_COLUMNS = ["group", "checkpoint", "delta_mean", "n", "slope", "rel_delta_mean", "step", "n_pairs",
                 "n_artifact", *PARTITION, "checkpoint_step"]


def _key(value):
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def slope(prev_mean: float, mean: float, prev_step: int, step: int) -> float:
    """(Δ̄(c_i) − Δ̄(c_{i−1})) / (step_i − step_{i−1}) × 1e5; NaN if either mean is missing or steps tie."""
    if math.isnan(prev_mean) or math.isnan(mean) or step == prev_step:
        return float("nan")
    return (mean - prev_mean) / (step - prev_step) * 1e5


def group_table(transfer: pd.DataFrame, main_step: int, groups: dict | None = None) -> pd.DataFrame:
    """Δ̄ per group and checkpoint (mean over the group's pairs that have both values), with n and slope.

    One block per partition (PARTITION) that holds at least one group pair; inside it every group ×
    checkpoint is a row, with NaN and n = 0 where no pair has a value, so gaps are counted, not hidden.
    """
    groups = GROUPS if groups is None else groups
    pair_to_groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, pairs in groups.items():
        for pair in pairs:
            pair_to_groups[pair].append(name)
    partitions: dict[tuple, dict] = defaultdict(
        lambda: {"ckpts": {}, "known": {}, "values": defaultdict(list), "hit": False})
    for row in transfer.to_dict("records"):
        part = partitions[tuple(_key(row[k]) for k in PARTITION)]
        step = row["step"]
        part["ckpts"].setdefault(row["checkpoint"], None if step is pd.NA else int(step))
        part["known"].setdefault(row["checkpoint"], _key(row["checkpoint_step"]))  # None: the final model
        for name in pair_to_groups.get((row["eval_dataset"], row["train_dataset"]), []):
            part["hit"] = True
            if not math.isnan(row["delta"]):
                artifact = taskinfo.label_artifact(row["eval_dataset"], row["mode"], row["source"])
                part["values"][(name, row["checkpoint"])].append((row["delta"], row["rel_delta"], artifact))
    rows = []
    for part_key in sorted(partitions, key=lambda k: tuple(str(x) for x in k)):
        part = partitions[part_key]
        if not part["hit"]:
            continue
        # steps here are already plot positions (main at main_step), so order by them directly
        order = checkpoint_order(part["ckpts"].items(), main_step)
        for name, pairs in groups.items():
            prev: tuple[float, int] | None = None
            for checkpoint in order:
                values = part["values"].get((name, checkpoint), [])
                deltas = [v[0] for v in values]
                rels = [v[1] for v in values if not math.isnan(v[1])]
                mean = sum(deltas) / len(deltas) if deltas else float("nan")
                step = part["ckpts"][checkpoint]
                rows.append({
                    "group": name, "checkpoint": checkpoint, "delta_mean": mean, "n": len(deltas),
                    "slope": float("nan") if prev is None else slope(prev[0], mean, prev[1], step),
                    "rel_delta_mean": sum(rels) / len(rels) if rels else float("nan"), "step": step,
                    "n_pairs": len(pairs), "n_artifact": sum(v[2] for v in values),
                    **dict(zip(PARTITION, part_key, strict=True)), "checkpoint_step": part["known"][checkpoint],
                })
                prev = (mean, step)
    return pd.DataFrame(rows, columns=GROUP_COLUMNS).astype({"step": "Int64", "checkpoint_step": "Int64"})
