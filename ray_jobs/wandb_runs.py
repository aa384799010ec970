"""W&B wiring for the grid: one run per trial (resumable), one per evaluated model, one per selected cell.

Runs are found the way people talk about the grid: a cell's runs (its trials, its lr selection, its winner's
evaluation) share the group `mnli-default-ckpt step600` (`cell_group`; the cell's hash is in the config),
an evaluation is named by the model it scored, and every run is tagged with its dataset, format,
checkpoint and method (`key:value`), and records the command that launched the grid.

The API key is read by wandb itself from `WANDB_API_KEY`; ptft only checks whether it is set (to pick
online or offline in `auto` mode) and never copies it into a config, a log line or a file.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import tempfile
import time
from typing import Any

from ptft.core import storage
from ptft.core.ids import content_hash
from ptft.core.wandb_settings import WandbSettings, resolve_mode

BASE_GROUP = "base"  # the base checkpoints' evaluations: shared by every cell, so a group of their own


@dataclasses.dataclass(frozen=True)
class GridWandbSettings(WandbSettings):
    """`WandbSettings` plus what every run of one grid records: the grid's name and the command that
    launched it (read in the driver: a Ray worker's own `sys.argv` is Ray's worker script)."""

    grid: str = ""
    command: str = ""
    log_models: bool = False  # each cell's winner as a model artifact (spec wandb.log_models)


def settings_for(spec, storage_root: str) -> GridWandbSettings:
    # wandb writes locally; for an object-store grid the runs stay on the node until synced.
    directory = storage_root if not storage.is_remote(storage_root) else tempfile.gettempdir()
    return GridWandbSettings(spec.wandb.project, spec.wandb.entity, resolve_mode(spec.wandb.mode), directory,
                             grid=spec.name, command=shlex.join(sys.argv), log_models=spec.wandb.log_models)


def _method_label(thing: Any) -> str | None:
    """The fine-tuning method's label of a trial, cell or model identity; None for full fine-tuning, so
    groups and names keep their form for the grids that have no method axis."""
    method = getattr(thing, "method", None)
    label = getattr(method, "label", method)  # a Method value (trials, cells) or its label (identities)
    return str(label) if label and label != "full" else None


def cell_group(thing: Any) -> str:
    """A cell as people say it, `mnli-default-ckpt step600` (`... lora-r16` for another method), from a
    trial, a cell or a fine-tuned model's identity (whose checkpoint is the label itself)."""
    checkpoint = getattr(thing.checkpoint, "label", thing.checkpoint)
    method = _method_label(thing)
    objective = getattr(thing, "objective", None)
    kind = getattr(objective, "kind", objective)  # an ObjectiveConfig (trials, cells) or its kind (identities)
    if getattr(thing, "rejection", None) is not None:  # SFT on a kept set: named as its records name it
        kind = "rejection_sampling"
    prior = getattr(thing, "prior_stages", None)
    return ((f"{kind} " if kind and kind != "sft" else "") + f"{thing.train_dataset}-{thing.train_format}-ckpt {checkpoint}"
            + (f" {method}" if method else "") + (f" after {prior}" if prior else ""))


def run_tags(thing: Any, *extra: str) -> list[str]:
    """`dataset:mnli`, `format:default`, `checkpoint:step600`, `method:full` (the fields it has), then `extra`."""
    checkpoint = getattr(thing.checkpoint, "label", thing.checkpoint)
    pairs = [("dataset", getattr(thing, "train_dataset", None)), ("format", getattr(thing, "train_format", None)),
             ("checkpoint", checkpoint),
             ("method", (_method_label(thing) or "full") if getattr(thing, "train_dataset", None) else None)]
    return [f"{key}:{value}"[:64] for key, value in pairs if value] + [tag[:64] for tag in extra]  # W&B: <= 64


def eval_run_name(identity: Any) -> str:
    """An evaluation run is named by the model it scored: `eval base ckpt step600`, or the fine-tuned
    model's cell and lr, `eval mnli-default-ckpt step600 lr0.003`."""
    if identity.model_kind == "base":
        return f"eval base ckpt {identity.checkpoint}"
    return f"eval {cell_group(identity)} lr{identity.lr:g}"


def run_id(*parts: str) -> str:
    """A W&B run id derived from our ids, so a resumed trial continues the same run."""
    return content_hash(list(parts), length=16)


def init_run(settings: WandbSettings | None, *, run_id: str, name: str, group: str | None,
             job_type: str, config: dict[str, Any], tags: list[str] | None = None, wait_in_use_s: float = 60.0):
    """Start (or resume) a run; returns None when W&B is disabled. A grid's settings add its name (config
    and a `grid:` tag) and the launching command (config `command`).

    Each run gets a W&B service of its own process: a Ray worker inherits `WANDB_SERVICE` from a driver
    that had used W&B, and through that shared service a run of a killed attempt stays "in use" for its
    retry. `finish_run` stops the service again. Should a run still be held, this waits for it, then goes
    on without W&B for this run rather than fail the work it logs.
    """
    if settings is None or settings.mode == "disabled":
        return None
    import wandb

    os.environ.pop("WANDB_SERVICE", None)  # never another process's service (see above)
    tags = list(tags or [])
    if isinstance(settings, GridWandbSettings):
        config = {**config, "grid": settings.grid, "command": settings.command}
        tags.append(f"grid:{settings.grid}"[:64])
    os.makedirs(settings.dir, exist_ok=True)
    deadline = time.monotonic() + wait_in_use_s
    while True:
        try:
            return wandb.init(
                project=settings.project, entity=settings.entity, mode=settings.mode, dir=settings.dir,
                id=run_id, resume="allow", name=name, group=group, job_type=job_type, config=config, tags=tags,
                settings=wandb.Settings(init_timeout=60, silent=True, console="off"),
                reinit="create_new",
            )
        except Exception as err:  # wandb raises its own ServerResponseError, not part of its public API
            if "in use" not in str(err):
                raise
            if time.monotonic() > deadline:
                print(f"[ptft] warning: W&B run {run_id} ({name}) is still held by an earlier attempt after "
                      f"{wait_in_use_s:.0f}s; this run goes on without W&B logging", file=sys.stderr, flush=True)
                return None
            time.sleep(2.0)


def finish_run(run) -> None:
    """Finish a run and stop this process's W&B service: Ray ends idle workers without running W&B's
    exit hook cleanly, which otherwise prints a 'Connection lost' traceback from every such worker."""
    if run is None:
        return
    import wandb

    run.finish()
    wandb.teardown()


def log_selection(settings: WandbSettings | None, plan, cell, record: dict[str, Any],
                  model_dir: str | None = None) -> None:
    """One short run per selected cell, in the cell's group: the winning lr and every lr's final
    validation loss in its summary, where the cell's trials and its winner's evaluation sit beside it."""
    if settings is None or not settings.enabled:
        return
    group = cell_group(cell)
    winner = record["winner"]
    run = init_run(settings, run_id=run_id("selection", cell.cell_id), name=f"select {group}", group=group,
                   job_type="selection", tags=run_tags(cell, "selection"),
                   config={"cell_id": cell.cell_id, "checkpoint": cell.checkpoint.label,
                           "train_dataset": cell.train_dataset, "train_format": cell.train_format,
                           "lrs": list(cell.lrs), "metric": record.get("metric", "val_loss")})
    if run is None:
        return
    run.summary.update({"winner_lr": winner["lr"], "winner_trial_id": winner["trial_id"],
                        "winner_val_loss": winner["val_loss"],
                        **{f"val_loss/lr{c['lr']:g}": c["val_loss"] for c in record.get("candidates", [])}})
    if getattr(settings, "log_models", False) and model_dir and os.path.isdir(model_dir):
        import wandb

        artifact = wandb.Artifact(f"model-{cell.cell_id}", type="model",
                                  metadata={"cell": group, "trial_id": winner["trial_id"], "lr": winner["lr"]})
        artifact.add_dir(model_dir)
        run.log_artifact(artifact)
    finish_run(run)
