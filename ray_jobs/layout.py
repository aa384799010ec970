"""Where a grid keeps everything under its one `storage` root. Markers here are the ledger's only truth.

    <storage>/plan.json                      the plan as last run (ids and fields)
    <storage>/trials/<trial_id>/             a trial's final model, manifest.json, COMPLETED (last)
    <storage>/trials/<trial_id>/EARLY_STOPPED.json   ASHA stopped it: its last metrics
    <storage>/train/<trial_id>/              Ray Train run: its retained checkpoints (resume)
    <storage>/tune/                          Ray Tune experiment state
    <storage>/selection/<cell_id>.json       the winning lr of a cell and every lr's curve
    <storage>/evals/<model_key>/             results.jsonl, records/<job_id>.json, predictions/
    <storage>/analysis/                      matrices, plots, report.html
    <storage>/wandb/                         offline W&B runs (sync with `wandb sync`)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ptft import storage


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "x"


@dataclass(frozen=True)
class GridLayout:
    root: str

    @property
    def plan_file(self) -> str:
        return storage.join(self.root, "plan.json")

    def trial_dir(self, trial_id: str) -> str:
        return storage.join(self.root, "trials", trial_id)

    def trial_completed(self, trial_id: str) -> str:
        return storage.join(self.trial_dir(trial_id), "COMPLETED")

    def trial_manifest(self, trial_id: str) -> str:
        return storage.join(self.trial_dir(trial_id), "manifest.json")

    def trial_early_stopped(self, trial_id: str) -> str:
        return storage.join(self.trial_dir(trial_id), "EARLY_STOPPED.json")

    def trial_model(self, trial_id: str) -> str:
        return storage.join(self.trial_dir(trial_id), "model")

    @property
    def train_root(self) -> str:
        return storage.join(self.root, "train")

    def train_run(self, trial_id: str) -> str:
        return storage.join(self.train_root, trial_id)

    @property
    def tune_root(self) -> str:
        return storage.join(self.root, "tune")

    def selection_file(self, cell_id: str) -> str:
        return storage.join(self.root, "selection", f"{cell_id}.json")

    @property
    def evals_root(self) -> str:
        return storage.join(self.root, "evals")

    def eval_dir(self, model_key: str) -> str:
        return storage.join(self.evals_root, model_key)

    def eval_record(self, model_key: str, job_id: str) -> str:
        return storage.join(self.eval_dir(model_key), "records", f"{job_id}.json")

    @property
    def analysis_dir(self) -> str:
        return storage.join(self.root, "analysis")

    @property
    def wandb_dir(self) -> str:
        return storage.join(self.root, "wandb")

    def fault_marker(self, trial_id: str) -> str:
        return storage.join(self.root, "faults", f"{trial_id}.injected")


def base_model_key(checkpoint_label: str) -> str:
    return f"base-{_safe(checkpoint_label)}"


def trial_model_key(trial_id: str) -> str:
    return f"trial-{trial_id}"
