"""A hand-made grid where every number is known by construction (see `known_records`)."""

from __future__ import annotations

import dataclasses

import pytest

from evals.analysis import taskinfo
from evals.results import ResultRecord

MAIN_STEP = 1000  # the final model's x position in these tests: keeps the slopes round numbers


def rec(kind: str, checkpoint: str, eval_dataset: str, value: float, *, train: str | None = None,
        lr: float | None = None, fmt: str = "default", shots: int = 4, mode: str = "fixed",
        source: str = "ptft", metric: str = "accuracy", std: float | None = 0.01) -> ResultRecord:
    """One record of the tiny grid; checkpoint "main" has no step, the others' step is their label."""
    return ResultRecord(
        model_kind=kind, base_model="tiny-olmo", checkpoint=checkpoint,
        checkpoint_step=None if checkpoint == "main" else int(checkpoint),
        train_dataset=train, train_format="default" if train else None, lr=lr,
        eval_dataset=eval_dataset, eval_format=fmt, shots=shots, metric=metric, value=value, std=std, n=100,
        mode=mode, source=source,
    )


def ft_mnli(checkpoint: str, eval_dataset: str, value: float, **kw) -> ResultRecord:
    return rec("finetuned", checkpoint, eval_dataset, value, train="mnli", lr=1e-5, **kw)


def ft_xsum(checkpoint: str, eval_dataset: str, value: float, **kw) -> ResultRecord:
    return rec("finetuned", checkpoint, eval_dataset, value, train="xsum", lr=1e-6, **kw)


def known_records() -> list[ResultRecord]:
    """Checkpoints 100, 200, main; fine-tuned on mnli (everywhere) and xsum (100, 200 only).

    Cells of mnli (3 checkpoints x 4 evals = 12): mnli_matched and paws complete; xsum lacks the
    fine-tuned value at 200 and the base at main; mnli_matched[instruct] exists only at 100 (so 200
    and main miss both). xsum: 4 complete cells. Base mnli_matched[io] at 100 has no partner.
    """
    return [
        rec("base", "100", "mnli_matched", 0.30), rec("base", "100", "paws", 0.50), rec("base", "100", "xsum", 0.10),
        rec("base", "100", "mnli_matched", 0.35, fmt="instruct"), rec("base", "100", "mnli_matched", 0.32, fmt="io"),
        rec("base", "200", "mnli_matched", 0.40), rec("base", "200", "paws", 0.60), rec("base", "200", "xsum", 0.20),
        rec("base", "main", "mnli_matched", 0.50), rec("base", "main", "paws", 0.70),
        ft_mnli("100", "mnli_matched", 0.60), ft_mnli("100", "paws", 0.45), ft_mnli("100", "xsum", 0.05),
        ft_mnli("100", "mnli_matched", 0.50, fmt="instruct"),
        ft_mnli("200", "mnli_matched", 0.80), ft_mnli("200", "paws", 0.50),
        ft_mnli("main", "mnli_matched", 0.90), ft_mnli("main", "paws", 0.70), ft_mnli("main", "xsum", 0.15),
        ft_xsum("100", "xsum", 0.30), ft_xsum("100", "mnli_matched", 0.30),
        ft_xsum("200", "xsum", 0.35), ft_xsum("200", "mnli_matched", 0.35),
    ]


@pytest.fixture
def chance(monkeypatch):
    """Stand in for the task registry's chance levels (paws 0.5; everything else unknown)."""
    levels = {"paws": 0.5, "mnli_matched": 1 / 3}
    monkeypatch.setattr(taskinfo, "chance_level", lambda name: levels.get(name))
    return levels


# Two methods fine-tuned from the same checkpoints at the same lr: full SFT gains +0.40 in-domain and
# loses 0.10 on each off-task cell; LoRA gains +0.20/+0.25/+0.30 and loses 0.015/0/0 on average.
BASE_2M = {"100": (0.40, 0.70, 0.30), "200": (0.45, 0.75, 0.32), "main": (0.50, 0.80, 0.35)}
FULL_2M = {"100": (0.80, 0.60, 0.20), "200": (0.85, 0.65, 0.22), "main": (0.90, 0.70, 0.25)}
LORA_2M = {"100": (0.60, 0.68, 0.29), "200": (0.70, 0.75, 0.32), "main": (0.80, 0.80, 0.36)}


def two_method_records() -> list[ResultRecord]:
    """mnli fine-tuned with full SFT and with LoRA (lora-r16) at checkpoints 100, 200 and main; evaluated
    on mnli_matched (its own eval set, also in the instruct format at 100), paws and xsum (ROUGE-L)."""
    records = []
    for method, table in (("base", BASE_2M), ("full", FULL_2M), ("lora-r16", LORA_2M)):
        for checkpoint, (own, paws, xsum) in table.items():
            kind = "base" if method == "base" else "finetuned"
            kw = {} if kind == "base" else {"train": "mnli", "lr": 1e-5}
            extra = {} if kind == "base" else {"method": method}
            for eval_dataset, value, metric in (("mnli_matched", own, "accuracy"), ("paws", paws, "accuracy"),
                                                ("xsum", xsum, "rougeL")):
                records.append(dataclasses.replace(
                    rec(kind, checkpoint, eval_dataset, value, metric=metric, **kw), **extra))
    instruct = {"base": 0.42, "full": 0.70, "lora-r16": 0.55}
    for method, value in instruct.items():
        kind = "base" if method == "base" else "finetuned"
        kw = {} if kind == "base" else {"train": "mnli", "lr": 1e-5}
        record = rec(kind, "100", "mnli_matched", value, fmt="instruct", **kw)
        records.append(record if kind == "base" else dataclasses.replace(record, method=method))
    return records
