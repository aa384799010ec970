"""W&B settings and the one rule that picks online or offline, shared by the grid's runs and the analysis.

The API key is read by wandb itself from `WANDB_API_KEY`; ptft only checks whether it is set and never
copies it into a config, a log line or a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MODES = ("auto", "online", "offline", "disabled")


class WandbModeError(ValueError):
    """A W&B mode that cannot work here (unknown, or online without a key)."""


def resolve_mode(mode: str | None) -> str:
    """auto (or None): online when WANDB_API_KEY is set, else offline. online without a key is an error,
    raised before anything runs: wandb would otherwise fail or block for minutes on the first init."""
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    if mode in (None, "auto"):
        return "online" if has_key else "offline"
    if mode not in MODES:
        raise WandbModeError(f"wandb mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "online" and not has_key:
        raise WandbModeError("wandb mode 'online' needs WANDB_API_KEY in the environment; export it, "
                             "or use mode 'auto' or 'offline' (runs sync later with `wandb sync`)")
    return mode


@dataclass(frozen=True)
class WandbSettings:
    """Where runs go, with the mode already resolved; shipped to Ray workers as is (never the key)."""

    project: str
    entity: str | None
    mode: str  # online | offline | disabled
    dir: str  # wandb.init(dir=...): runs land in <dir>/wandb/

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled"
