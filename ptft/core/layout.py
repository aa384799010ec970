"""The storage layout: every file and marker ptft writes, named in one place.

A grid keeps everything under its one `storage` root; a trainer's output folder and an evaluator's
output folder have the same shape whether a grid made them or a user ran `ptft eval` by hand. Every
reader and writer goes through these names, and the markers here are the ledger's only truth.

    <storage>/plan.json                          the plan as last run (ids and fields)
    <storage>/LEASE.json                         the driver running the grid now (host, pid, heartbeat)
    <storage>/trials/<trial_id>/                 one trial's output folder (`TrainOutput`):
        model/                                   the exported model (HF format)
        manifest.json                            final metrics and provenance
        COMPLETED                                written last: the trial is done
        EARLY_STOPPED.json                       ASHA stopped it: its last metrics (never a winner)
        curve.json                               every report of the trial, in step order
        resumes.json                             where training picked up after each resume
    <storage>/train/<trial_id>/                  Ray Train run: its retained checkpoints (resume)
    <storage>/tune/                              Ray Tune experiment state
    <storage>/selection/<cell_id>.json           the winning lr of a cell and every lr's curve
    <storage>/stages/<cell_id>/                  a rejection_sampling stage's data (evals/rejection.py):
                                                 samples.jsonl, kept.jsonl, summary.json, DONE.json (last)
    <storage>/evals/<model_key>/                 one model's eval folder (`EvalOutput`):
        records/<job_id>.json                    a job's result record: its completion marker (last)
        predictions/<job_id>.jsonl               its per-example predictions (written first)
        results.jsonl                            every record of this model, rewritten after each job
        harness/<name>.json                      an lm-eval task set's records: its marker (last), beside
                                                 <name>.samples.jsonl and <name>.results.json (first)
    <storage>/analysis/                          matrices, plots, report.html
    <storage>/wandb/                             offline W&B runs (sync with `wandb sync`)
    <storage>/faults/<trial_id>.injected         tests only: a crash injected once
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ptft.core import storage

# Bump when this layout changes shape, so a storage written by another layout is recognised.
LAYOUT_VERSION = 2


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "x"


@dataclass(frozen=True)
class TrainOutput:
    """A trainer's output folder: the exported model, its manifest, and the marker written last."""

    root: str

    @property
    def model(self) -> str:
        """A plain Hugging Face model: the fine-tuned weights (full), or the merged adapter (LoRA)."""
        return storage.join(self.root, "model")

    @property
    def adapter(self) -> str:
        """The peft adapter (LoRA, prompt tuning, P-tuning); absent for full fine-tuning."""
        return storage.join(self.root, "adapter")

    @property
    def manifest(self) -> str:
        return storage.join(self.root, "manifest.json")

    @property
    def completed(self) -> str:
        return storage.join(self.root, "COMPLETED")

    @property
    def early_stopped(self) -> str:
        return storage.join(self.root, "EARLY_STOPPED.json")

    @property
    def curve(self) -> str:
        return storage.join(self.root, "curve.json")

    @property
    def resumes(self) -> str:
        return storage.join(self.root, "resumes.json")

    def local_checkpoints(self) -> str:
        """Bare runs: where DeepSpeed checkpoints go when the output folder is local."""
        return storage.join(self.root, "checkpoints")


@dataclass(frozen=True)
class EvalOutput:
    """An evaluator's output folder for one model: per-job markers, predictions, and the results table."""

    root: str

    @property
    def records_dir(self) -> str:
        return storage.join(self.root, "records")

    def record(self, job_id: str) -> str:
        return storage.join(self.records_dir, f"{job_id}.json")

    def predictions(self, job_id: str, readable: str = "") -> str:
        """A job's per-example predictions: `<readable>.<job_id>.jsonl` (e.g. `rte.default.2shot.<id>`)."""
        return storage.join(self.root, "predictions", f"{readable}.{job_id}.jsonl" if readable else f"{job_id}.jsonl")

    @property
    def results(self) -> str:
        return storage.join(self.root, "results.jsonl")

    def harness(self, name: str) -> str:
        """An lm-eval task set's marker (evals/harness.py): its records and cache key, written last."""
        return storage.join(self.root, "harness", f"{name}.json")

    def harness_file(self, name: str, suffix: str) -> str:
        """What that run wrote before its marker: `samples.jsonl` (per document), `results.json` (lm-eval's)."""
        return storage.join(self.root, "harness", f"{name}.{suffix}")

    def record_files(self) -> list[str]:
        """Every record marker in the folder, by path (hidden and temporary files left out)."""
        return [storage.join(self.records_dir, name) for name in sorted(storage.list_dir(self.records_dir))
                if name.endswith(".json") and not name.startswith(".")]


@dataclass(frozen=True)
class GridLayout:
    """Everything under one grid's storage root."""

    root: str

    @property
    def plan_file(self) -> str:
        return storage.join(self.root, "plan.json")

    @property
    def lease_file(self) -> str:
        return storage.join(self.root, "LEASE.json")

    def trial(self, trial_id: str) -> TrainOutput:
        return TrainOutput(storage.join(self.root, "trials", trial_id))

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

    def stage_data(self, cell_id: str) -> str:
        """A rejection_sampling cell's sampled data and its kept SFT set (the folder its task reads)."""
        return storage.join(self.root, "stages", cell_id)

    @property
    def evals_root(self) -> str:
        return storage.join(self.root, "evals")

    def evals(self, model_key: str) -> EvalOutput:
        return EvalOutput(storage.join(self.evals_root, model_key))

    def eval_outputs(self) -> list[EvalOutput]:
        """Every model's eval folder under this grid, in name order."""
        return [self.evals(name) for name in sorted(storage.list_dir(self.evals_root))]

    @property
    def analysis_dir(self) -> str:
        return storage.join(self.root, "analysis")

    @property
    def wandb_dir(self) -> str:
        return storage.join(self.root, "wandb")

    def fault_marker(self, trial_id: str) -> str:
        return storage.join(self.root, "faults", f"{trial_id}.injected")


def base_model_key(checkpoint_label: str) -> str:
    """The eval folder name of a base checkpoint."""
    return f"base-{_safe(checkpoint_label)}"


def trial_model_key(trial_id: str) -> str:
    """The eval folder name of a fine-tuned trial's model."""
    return f"trial-{trial_id}"
