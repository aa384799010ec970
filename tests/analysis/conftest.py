"""A hand-made grid where every number is known by construction (see `known_records`)."""

from __future__ import annotations

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
