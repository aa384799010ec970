"""Read an offline W&B run back from its `run-<id>.wandb` file (wandb 0.31 ships no reader for it).

The file is a LevelDB-style log (wandb's datastore): a 7-byte header (`:W&B`, magic, version), then 32 KiB
blocks of chunks, each with a 7-byte header (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last)
holding serialized `wandb_internal_pb2.Record`s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    pos, pending, out = HEADER, b"", []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
    return [pb.Record.FromString(chunk) for chunk in out]


@dataclass
class OfflineRun:
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def read_run(run_dir: Path) -> OfflineRun:
    """Name, group, job type, tags, config and summary of the offline run in `run_dir`."""
    (path,) = run_dir.glob("run-*.wandb")
    run = OfflineRun()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.name, run.group, run.job_type = record.run.display_name, record.run.run_group, record.run.job_type
            run.tags = list(record.run.tags)
            run.config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            run.config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "summary":
            run.summary.update({item.key: json.loads(item.value_json) for item in record.summary.update})
    return run


def offline_runs(wandb_root: Path) -> list[OfflineRun]:
    return [read_run(d) for d in sorted(wandb_root.glob("offline-run-*"))]
