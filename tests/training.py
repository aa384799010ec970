"""What the training tests share: a reporter that crashes a run after a checkpoint (the resume tests),
and the weights of an exported model."""

from __future__ import annotations

import os
from typing import Any

import torch

from trainers.job import LocalReporter, TrainJob


class Interrupt(Exception):
    pass


class InterruptingReporter(LocalReporter):
    """Simulates a crash right after the checkpoint of step `at` has been saved and reported."""

    def __init__(self, job: TrainJob, at: int) -> None:
        super().__init__(job)
        self.at = at

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        super().report(metrics, checkpoint_dir)
        if metrics["step"] == self.at:
            raise Interrupt


def model_weights(model_dir: str) -> dict[str, torch.Tensor]:
    """The tensors of an exported model folder's `model.safetensors`."""
    from safetensors.torch import load_file

    return load_file(os.path.join(model_dir, "model.safetensors"))
