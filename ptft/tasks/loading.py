"""Loading splits: the real hub path, the shipped minis, or a folder of `<task>/<split>.jsonl`.

Every path ends in `datasets.load_dataset`, so tests and the demo exercise the same code as a real
run: source="hub" calls `load_dataset(hub_id, config, split=...)`; source="mini" and a folder call
`load_dataset("json", data_files=...)`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from ptft.tasks.errors import DataError
from ptft.tasks.formats.render import column_root
from ptft.tasks.registry import get_task
from ptft.tasks.types import TaskSpec

MINI_DIR = Path(__file__).resolve().parent / "mini" / "data"


def split_path(task: str, split: str, source: str) -> str:
    """The jsonl file a local source reads for (task, split)."""
    folder = MINI_DIR if source == "mini" else Path(source)
    return str(folder / task / f"{split}.jsonl")


@functools.lru_cache(maxsize=128)
def _load_json(path: str, mtime_ns: int, size: int) -> Any:
    import datasets

    # mtime/size are in the key so an edited file is re-read within one process
    return datasets.load_dataset("json", data_files=path, split="train")


def load_split(task: str | TaskSpec, split: str, source: str = "hub") -> Any:
    """The split as a `datasets.Dataset`, checked: it exists, is not empty, has the mapped columns."""
    spec = get_task(task) if isinstance(task, str) else task
    if source == "hub":
        import datasets

        dataset = datasets.load_dataset(spec.hub_id, spec.hub_config, split=split)
    else:
        path = split_path(spec.name, split, source)
        if not os.path.isfile(path):
            raise DataError(spec.name, split, None, None, f"no file {path} (source={source!r})")
        stat = os.stat(path)
        if stat.st_size == 0:
            raise DataError(spec.name, split, None, None, f"empty split ({path})")
        dataset = _load_json(path, stat.st_mtime_ns, stat.st_size)
    if len(dataset) == 0:
        raise DataError(spec.name, split, None, None, "empty split")
    missing = sorted({column_root(p) for p in spec.columns.values()} - set(dataset.column_names))
    if missing:
        raise DataError(spec.name, split, None, missing[0],
                        f"missing column (has {sorted(dataset.column_names)})")
    return dataset


def load_rows(task: str, split: str, source: str = "hub") -> list[dict]:
    """The split's rows as dicts (see `load_split`)."""
    return list(load_split(task, split, source))


def subset_indices(spec: TaskSpec, n_rows: int) -> list[int]:
    """The study's training-subset rule: `shuffle(seed)` then the first N (or fraction x rows).

    The permutation comes from `datasets.Dataset.shuffle` itself, so it equals the study's
    `raw['train'].shuffle(seed=42).select(range(6000))` for the same split. Splits smaller than N
    (the minis) are taken whole; `training_set` counts that.
    """
    import datasets

    order = datasets.Dataset.from_dict({"i": list(range(n_rows))}).shuffle(seed=spec.subset_seed)["i"]
    if spec.train_subset_fraction is not None:
        take = int(n_rows * spec.train_subset_fraction)
    elif spec.train_subset_size is not None:
        take = min(spec.train_subset_size, n_rows)
    else:
        take = n_rows
    return list(order[:take])


def shuffled_order(n_rows: int, seed: int) -> list[int]:
    """Row order after `datasets.Dataset.shuffle(seed=seed)` (the study's LLMBar files)."""
    import datasets

    return list(datasets.Dataset.from_dict({"i": list(range(n_rows))}).shuffle(seed=seed)["i"])
