"""The golden-render snapshot: every (dataset, format, mode) rendered from the minis.

Regenerate after an intended change with `python -m tests.tasks.update_goldens` (it refuses to record
a changed render whose template_version did not change: bump RENDER_VERSION or the template).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ptft.tasks import FORMATS, MODES, eval_set, get_task, list_tasks, template_version, training_set

GOLDEN_PATH = Path(__file__).resolve().parent / "golden" / "renders.json"


def keys() -> list[tuple[str, str, str]]:
    """Every (task, fmt, mode) the registry supports."""
    return [(t, f, m) for t in list_tasks() for m in MODES for f in FORMATS if get_task(t).supports(f, m)]


def snapshot(task: str, fmt: str, mode: str) -> dict[str, Any]:
    """Exact renders of one (task, fmt, mode): training segments and 2-shot eval contexts."""
    spec = get_task(task)
    out: dict[str, Any] = {"template_version": template_version(task, fmt, mode)}
    if spec.train_split:
        train = training_set(task, fmt, mode, source="mini", limit=2)
        out["train"] = [[[s.text, s.train, s.eos] for s in r.segments] for r in train.examples]
        out["train_checksum"] = train.checksum
    if spec.eval_split:
        evals = eval_set(task, fmt, mode, shots=2, source="mini", limit=2)
        out["eval"] = [{"id": e.example_id, "context": e.context, "target": e.target,
                        "candidates": list(e.candidates), "gold_index": e.gold_index}
                       for e in evals.examples]
        out["stop_sequences"] = list(evals.stop_sequences)
        out["eval_checksum"] = evals.checksum
    return out


def key_name(task: str, fmt: str, mode: str) -> str:
    return f"{task}|{fmt}|{mode}"


def load_goldens() -> dict[str, Any]:
    return json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
