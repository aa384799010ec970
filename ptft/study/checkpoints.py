"""Checkpoints: how a spec names them, and how a pre-training step becomes a hub revision.

Hub models publish pre-training steps as branches: `allenai/OLMo-1B-hf` names them `step{N}-tokens{M}B`,
and M cannot be computed from N, so a step is resolved by listing the repo's branches and matching the
prefix `step{N}-`. A checkpoint's identity (for ids) is how the spec names it, not the resolved branch:
one step maps to one branch, and planning must work offline.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

_STEP_IN_NAME = re.compile(r"^step(\d+)(?:-|$)")

CheckpointKind = Literal["main", "step", "revision", "local"]


class CheckpointResolutionError(ValueError):
    """A checkpoint could not be turned into something `from_pretrained` can load."""


@dataclass(frozen=True)
class CheckpointRef:
    """One checkpoint of the model family, as the spec names it."""

    kind: CheckpointKind
    label: str  # short human name: "1000", "main", "step1000-tokens4B", or a local dir's name
    step: int | None = None  # pre-training step, for curves and ordering
    revision: str | None = None  # explicit hub revision ("main" for the final model)
    path: str | None = None  # local directory (as written in the spec)

    def identity(self) -> dict[str, Any]:
        """The fields that define this checkpoint in ids (no resolved branch, no absolute paths)."""
        return {"kind": self.kind, "step": self.step, "revision": self.revision, "path": self.path}


def step_from_revision(revision: str) -> int | None:
    match = _STEP_IN_NAME.match(revision)
    return int(match.group(1)) if match else None


def looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or os.sep in value


def parse_checkpoint(value: Any) -> CheckpointRef:
    """Turn a spec entry into a `CheckpointRef`.

    Accepted: an int step (`1000`); `"main"`; a revision string (`"step1000-tokens4B"`); a local
    directory (`"./ckpts/step100"`); or a mapping `{path: DIR, step: N, name: LABEL}` /
    `{revision: REV, step: N}` / `{step: N}`.
    """
    if isinstance(value, bool):
        raise ValueError(f"checkpoint {value!r} is not a step, 'main', a revision or a path")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"checkpoint step {value} is negative")
        return CheckpointRef(kind="step", label=str(value), step=value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("checkpoint is an empty string")
        if text == "main":
            return CheckpointRef(kind="main", label="main", revision="main")
        if text.isdigit():
            return CheckpointRef(kind="step", label=text, step=int(text))
        if looks_like_path(text):
            return CheckpointRef(kind="local", label=os.path.basename(text.rstrip("/")), path=text,
                                 step=step_from_revision(os.path.basename(text.rstrip("/"))))
        return CheckpointRef(kind="revision", label=text, revision=text, step=step_from_revision(text))
    if isinstance(value, dict):
        allowed = {"path", "revision", "step", "name"}
        unknown = set(value) - allowed
        if unknown:
            raise ValueError(f"unknown checkpoint key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        step = value.get("step")
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
            raise ValueError(f"checkpoint step {step!r} is not a non-negative integer")
        if "path" in value and "revision" in value:
            raise ValueError("a checkpoint has either 'path' or 'revision', not both")
        if "path" in value:
            path = str(value["path"])
            label = str(value.get("name") or os.path.basename(path.rstrip("/")))
            return CheckpointRef(kind="local", label=label, path=path,
                                 step=step if step is not None else step_from_revision(label))
        if "revision" in value:
            rev = str(value["revision"])
            kind: CheckpointKind = "main" if rev == "main" else "revision"
            return CheckpointRef(kind=kind, label=str(value.get("name") or rev), revision=rev,
                                 step=step if step is not None else step_from_revision(rev))
        if step is not None:
            return CheckpointRef(kind="step", label=str(value.get("name") or step), step=step)
        raise ValueError("a checkpoint mapping needs 'path', 'revision' or 'step'")
    raise ValueError(f"checkpoint {value!r} is not a step, 'main', a revision or a path")


def local_path(path: str, base_dir: str = ".") -> str:
    """A local path as the spec writes it, made absolute against the spec's folder."""
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


def check_local_checkpoints(model_id: str, refs: Iterable[CheckpointRef], base_dir: str = ".") -> None:
    """Fail on a local checkpoint (or a path-like model id) whose directory is missing, offline and fast.

    `ptft plan` and the grid call this before anything else; hub steps are left to `RevisionResolver`.
    """
    refs = list(refs)
    for i, ref in enumerate(refs):
        if ref.kind != "local":
            continue
        path = local_path(ref.path or "", base_dir)
        if not os.path.isdir(path):
            what = "is a file, not a directory" if os.path.exists(path) else "does not exist"
            raise CheckpointResolutionError(
                f"model.checkpoints[{i}]: checkpoint directory {ref.path!r} {what} ({path})")
    # model.id is loaded only for checkpoints that are not local dirs (`resolve`: a local model has "main")
    # A hub id is "org/name": only an explicit path, or one of more than two parts, must be a local folder.
    path_like = model_id.startswith(("/", "./", "../", "~")) or model_id.count("/") >= 2
    if any(ref.kind != "local" for ref in refs) and path_like and "://" not in model_id:
        here, there = os.path.expanduser(model_id), local_path(model_id, base_dir)
        if not (os.path.isdir(here) or os.path.isdir(there)):
            raise CheckpointResolutionError(
                f"model.id: {model_id!r} looks like a local model directory, but {there} does not exist")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_branches(model_id: str) -> list[str]:
    from huggingface_hub import list_repo_refs

    token = os.environ.get("HF_TOKEN")  # read by name; never logged
    return [branch.name for branch in list_repo_refs(model_id, token=token).branches]


class RevisionResolver:
    """Resolves steps to hub branches, listing each repo's branches at most once."""

    def __init__(self, list_branches: Callable[[str], Iterable[str]] | None = None):
        self._list_branches = list_branches or _hub_branches
        self._cache: dict[str, list[str]] = {}

    def branches(self, model_id: str) -> list[str]:
        if model_id not in self._cache:
            if self._list_branches is _hub_branches and hub_offline():
                # Fail at once: the hub client would otherwise retry for about half a minute.
                raise CheckpointResolutionError(
                    f"cannot list the revisions of {model_id!r}: HF_HUB_OFFLINE=1. Name the revision "
                    "explicitly (e.g. 'step1000-tokens4B'), use a local directory, or unset HF_HUB_OFFLINE."
                )
            try:
                self._cache[model_id] = list(self._list_branches(model_id))
            except CheckpointResolutionError:
                raise
            except Exception as err:  # network, auth, missing repo: say which model and why
                raise CheckpointResolutionError(
                    f"cannot list the revisions of {model_id!r}: {type(err).__name__}: {err}"
                ) from err
        return self._cache[model_id]

    def resolve_step(self, model_id: str, step: int) -> str:
        """The branch named `step{step}-...`; a missing step lists the nearest existing ones."""
        branches = self.branches(model_id)
        prefix = f"step{step}-"
        matches = sorted(b for b in branches if b.startswith(prefix) or b == f"step{step}")
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise CheckpointResolutionError(
                f"step {step} of {model_id!r} matches several revisions {matches}; name one explicitly"
            )
        steps = sorted({s for s in (step_from_revision(b) for b in branches) if s is not None})
        nearest = sorted(steps, key=lambda s: (abs(s - step), s))[:5]
        hint = f"; nearest existing steps: {sorted(nearest)}" if nearest else "; the repo has no step branches"
        raise CheckpointResolutionError(f"{model_id!r} has no revision for step {step}{hint}")

    def resolve(self, model_id: str, ref: CheckpointRef, base_dir: str = ".") -> tuple[str, str | None]:
        """Return (path_or_id, revision) to pass to `from_pretrained`."""
        if ref.kind == "local":
            path = local_path(ref.path or "", base_dir)
            if not os.path.isdir(path):
                raise CheckpointResolutionError(f"checkpoint directory {ref.path!r} does not exist ({path})")
            return path, None
        if os.path.isdir(os.path.expanduser(model_id)):
            # A local model folder has no branches: only "main" makes sense for it.
            if ref.kind != "main":
                raise CheckpointResolutionError(
                    f"model {model_id!r} is a local directory; checkpoint {ref.label!r} must be a local path"
                )
            return os.path.expanduser(model_id), None
        if ref.kind == "step":
            assert ref.step is not None
            return model_id, self.resolve_step(model_id, ref.step)
        return model_id, ref.revision
