"""Loading splits: the real hub path, the shipped minis, or a folder of `<task>/<split>.jsonl`.

Every path ends in `datasets.load_dataset`, so tests and the demo exercise the same code as a real
run: source="hub" calls `load_dataset(hub_id, config, split=...)`; source="mini" and a folder call
`load_dataset("json", data_files=...)`. A local file is first read line by line (`read_jsonl`) so that
malformed JSON, bytes that are not UTF-8 and lines that are not objects fail naming the file and line,
and so that a bad row's error can name its line and its value as written (the JSON reader infers one
type per column: one `1.5` among integer labels turns every label into a float).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptft.tasks.errors import DataError
from ptft.tasks.formats.render import column_root
from ptft.tasks.registry import REGISTRY, get_task
from ptft.tasks.types import TaskSpec

MINI_DIR = Path(__file__).resolve().parent / "mini" / "data"


def split_path(task: str | TaskSpec, split: str, source: str) -> str:
    """The jsonl file a local source reads for (task, split); a task declared with a folder reads
    `<folder>/<split>.jsonl` whatever the source (docs/tasks.md)."""
    spec = task if isinstance(task, TaskSpec) else REGISTRY.get(task)
    if spec is not None and spec.data_dir is not None:
        return str(Path(spec.data_dir) / f"{split}.jsonl")
    name = task.name if isinstance(task, TaskSpec) else task
    folder = MINI_DIR if source == "mini" else Path(source)
    return str(folder / name / f"{split}.jsonl")


def is_local(task: TaskSpec, source: str) -> bool:
    """Whether (task, source) reads a jsonl file: any source but the hub, and a declared folder always."""
    return source != "hub" or task.data_dir is not None


@dataclass(frozen=True)
class JsonlRows:
    """A local jsonl file as written: each row as `json.loads` read it, and its 1-based line number."""

    path: str
    rows: tuple[dict[str, Any], ...]
    lines: tuple[int, ...]


def read_jsonl(path: str, dataset: str = "?", split: str | None = None) -> JsonlRows:
    """Read a jsonl file line by line: DataError naming file and line on bytes that are not UTF-8, malformed
    JSON, or a line that is not a JSON object. Blank lines are skipped (as `datasets` skips them)."""
    stat = os.stat(path)
    return _read_jsonl(path, stat.st_mtime_ns, stat.st_size, dataset, split)


@functools.lru_cache(maxsize=128)
def _read_jsonl(path: str, mtime_ns: int, size: int, dataset: str, split: str | None) -> JsonlRows:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark, which the JSON reader accepts too
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(dataset, split, number, None,
                                f"not UTF-8: byte {raw[err.start]:#04x} at column {err.start + 1}", path,
                                "re-save the file as UTF-8") from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(dataset, split, number, None,
                                f"malformed JSON: {err.msg} at column {err.colno}", path,
                                f"make line {number} one complete JSON object") from None
            if not isinstance(row, dict):
                raise DataError(dataset, split, number, None,
                                f"expected a JSON object, got {type(row).__name__}", path,
                                f"make line {number} one JSON object ({{\"column\": value, ...}})")
            rows.append(row)
            lines.append(number)
    return JsonlRows(path, tuple(rows), tuple(lines))


@functools.lru_cache(maxsize=128)
def _load_json(path: str, mtime_ns: int, size: int) -> Any:
    import datasets

    # mtime/size are in the key so an edited file is re-read within one process
    return datasets.load_dataset("json", data_files=path, split="train")


def local_rows(task: str | TaskSpec, split: str, source: str) -> JsonlRows | None:
    """The rows of a local source's file as written (None for a hub split); see `read_jsonl`."""
    spec = get_task(task) if isinstance(task, str) else task
    if not is_local(spec, source):
        return None
    return read_jsonl(split_path(spec, split, source), spec.name, split)


def count_rows(task: str | TaskSpec, split: str, source: str = "hub") -> int | None:
    """Rows in a split without loading it: a local file's non-blank lines, a hub split's registry size
    (None when unknown, or when the local file is missing: `load_split` says why)."""
    spec = get_task(task) if isinstance(task, str) else task
    if not is_local(spec, source):
        return spec.split_sizes.get(split)
    path = split_path(spec, split, source)
    if not os.path.isfile(path):
        return None
    return len(read_jsonl(path, spec.name, split).rows)


def load_split(task: str | TaskSpec, split: str, source: str = "hub") -> Any:
    """The split as a `datasets.Dataset`, checked: it exists, is not empty, has the mapped columns.

    A local file is read line by line first (`read_jsonl`): a bad line fails naming file and line.
    """
    spec = get_task(task) if isinstance(task, str) else task
    path: str | None = None
    if not is_local(spec, source):
        import datasets

        dataset = datasets.load_dataset(spec.hub_id, spec.hub_config, split=split)
    else:
        path = split_path(spec, split, source)
        if not os.path.isfile(path):
            raise DataError(spec.name, split, None, None, f"no file {path} (source={source!r})",
                            fix=f"write the split to {path}, one JSON object per line, or change data.source")
        stat = os.stat(path)
        written = _read_jsonl(path, stat.st_mtime_ns, stat.st_size, spec.name, split)
        if not written.rows:
            raise DataError(spec.name, split, None, None, f"empty split ({path})", path,
                            "write the split's rows into the file, one JSON object per line")
        try:
            dataset = _load_json(path, stat.st_mtime_ns, stat.st_size)
        except Exception as err:  # the lines parse one by one, so this is the reader's own limit
            cause = err.__cause__ or err
            raise DataError(spec.name, split, None, None,
                            f"the JSON reader failed: {type(cause).__name__}: {cause}", path,
                            "give every row's columns one type each") from None
        if len(dataset) != len(written.rows):
            raise DataError(spec.name, split, None, None,
                            f"the JSON reader found {len(dataset)} rows but the file has {len(written.rows)}",
                            path, "write one JSON object per line")
    if len(dataset) == 0:
        raise DataError(spec.name, split, None, None, "empty split", path)
    missing = sorted({column_root(p) for p in spec.columns.values()} - set(dataset.column_names))
    if missing:
        raise DataError(spec.name, split, None, missing[0],
                        f"missing column (has {sorted(dataset.column_names)})", path,
                        f"add {missing[0]!r} to every row" if path else None)
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
    order = seeded_order(n_rows, spec.subset_seed)
    if spec.train_subset_fraction is not None:
        take = int(n_rows * spec.train_subset_fraction)
    elif spec.train_subset_size is not None:
        take = min(spec.train_subset_size, n_rows)
    else:
        take = n_rows
    return list(order[:take])


def shuffled_order(n_rows: int, seed: int) -> list[int]:
    """Row order after `datasets.Dataset.shuffle(seed=seed)` (the study's LLMBar files)."""
    return seeded_order(n_rows, seed)


def seeded_order(n_rows: int, seed: int) -> list[int]:
    """0..n-1 in the order `datasets.Dataset.shuffle(seed=seed)` gives, as the study's code drew it.

    The table is built from pyarrow with fixed fingerprints: `Dataset.from_dict` would fingerprint it by
    hashing with dill, which disassembles datasets' own functions into captured output that Ray Train
    workers then print (120 lines of bytecode per trial)."""
    import datasets
    import pyarrow as pa

    table = datasets.Dataset(pa.table({"i": list(range(n_rows))}), fingerprint=f"ptft-rows-{n_rows}")
    return list(table.shuffle(seed=seed, new_fingerprint=f"ptft-rows-{n_rows}-s{seed}")["i"])
