"""A marker is trusted only if what it vouches for verifies.

A trainer's COMPLETED vouches for its manifest and what it exported (the model, the adapter): the manifest
lists every file of each with its size, and each must be there at that size. An evaluator's record is its own marker: it must parse
as a result record of its job. A marker that does not verify is treated as absent (the work is redone),
and the reason is said, never swallowed.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ptft.core import storage
from ptft.core.layout import TrainOutput


def model_files(model_dir: str) -> dict[str, int]:
    """Every file of an exported model directory, relative path -> size in bytes."""
    if storage.is_remote(model_dir):
        return dict(storage.list_files(model_dir))
    found = {}
    for root, _, names in os.walk(model_dir):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, model_dir)] = os.path.getsize(path)
    return found


def train_output_problem(out: TrainOutput) -> str | None:
    """Why `out`'s COMPLETED marker cannot be trusted, or None when it verifies (or is absent)."""
    if not storage.exists(out.completed):
        return None
    try:
        manifest = storage.read_json(out.manifest)
    except FileNotFoundError:
        return f"{out.completed} is there but {out.manifest} is missing"
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return f"{out.manifest} does not parse ({err})"
    # What the trial exported: model/ (full, merged LoRA) and adapter/ (every peft method), each listed.
    folders = {out.model: manifest.get("model_files"), out.adapter: manifest.get("adapter_files")}
    if all(expected is None for expected in folders.values()):
        # a manifest from before files were listed: the model must at least be there
        found = _found(out.model)
        return None if "config.json" in found else f"{out.model} has no config.json"
    for folder, expected in folders.items():
        if expected is None:
            continue
        found = _found(folder)
        missing = sorted(name for name in expected if name not in found)
        if missing:
            return f"{folder} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
        changed = sorted(name for name, size in expected.items() if found[name] != size)
        if changed:
            return f"{folder}: {', '.join(changed[:3])} changed size since the trial completed"
    return None


def _found(folder: str) -> dict[str, int]:
    return model_files(folder) if storage.exists(folder) or storage.is_remote(folder) else {}


def record_problem(path: str, job_id: str) -> str | None:
    """Why the record marker at `path` cannot be trusted, or None when it parses as `job_id`'s record."""
    try:
        row: Any = json.loads(storage.read_text(path))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return f"{path} does not parse ({err.__class__.__name__}: {err})"
    if not isinstance(row, dict) or row.get("job_id") != job_id or not isinstance(row.get("value"), (int, float)):
        return f"{path} is not the record of job {job_id}"
    return None
