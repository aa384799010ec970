"""Training checkpoints (DeepSpeed, per rank), the exported model, the manifest and the COMPLETED marker.

A training checkpoint is a DeepSpeed checkpoint directory: every rank writes its own ZeRO shards and its
own RNG state, rank 0 writes the module states with our `client_state` (step, sampler position, token
counters) and the `latest` pointer. The final output is a plain Hugging Face model directory (ZeRO-3
shards gathered), a manifest, and a COMPLETED marker written last, all through `ptft.core.storage`.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ptft.core import storage
from ptft.core.integrity import train_output_problem
from ptft.core.layout import TrainOutput

log = logging.getLogger(__name__)

_TAG_PREFIX = "step_"


def has_checkpoint(directory: str | None) -> bool:
    """Whether `directory` holds a DeepSpeed checkpoint (its `latest` pointer)."""
    return bool(directory) and os.path.isfile(os.path.join(directory, "latest"))


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(engine: Any, directory: str, step: int, client_state: dict[str, Any],
                        keep_only_latest: bool = True, frozen_excluded: bool = False) -> str:
    """Save a DeepSpeed checkpoint on every rank (collective); returns the tag.

    With `keep_only_latest`, older tags in `directory` are removed once the new one is complete. With
    `frozen_excluded` (peft methods) only what trains is saved: the frozen base comes back from its
    checkpoint when the run resumes.
    """
    tag = f"{_TAG_PREFIX}{step}"
    engine.save_checkpoint(directory, tag=tag, client_state=client_state, exclude_frozen_parameters=frozen_excluded)
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.save(_rng_state(), os.path.join(directory, tag, f"rng_state_rank{rank}.pt"))
    if dist.is_initialized():
        dist.barrier()
    if keep_only_latest and rank == 0:
        for name in os.listdir(directory):
            if name.startswith(_TAG_PREFIX) and name != tag:
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    return tag


def load_training_state(engine: Any, directory: str, strict: bool = True) -> dict[str, Any]:
    """Load the latest DeepSpeed checkpoint in `directory` (collective); returns our client_state.

    `strict=False` for checkpoints that hold only the trained parameters (peft methods).
    """
    load_path, client_state = engine.load_checkpoint(directory, load_module_strict=strict)
    if load_path is None:
        raise RuntimeError(f"DeepSpeed could not load the checkpoint in {directory}")
    tag = Path(directory, "latest").read_text().strip()
    rank = dist.get_rank() if dist.is_initialized() else 0
    rng_file = os.path.join(directory, tag, f"rng_state_rank{rank}.pt")
    if os.path.exists(rng_file):
        _set_rng_state(torch.load(rng_file, weights_only=False))
    return client_state or {}


def export_model(engine: Any, tokenizer: Any, output_dir: str, zero_stage: int) -> str | None:
    """Write the consolidated Hugging Face model + tokenizer to `output_dir/model` (collective).

    Under ZeRO-3 the parameter shards are gathered first; the saved weights are the module's (bf16 on
    GPU, exact fp32 on CPU). Returns the model path on rank 0, None elsewhere.
    """
    import deepspeed

    rank = dist.get_rank() if dist.is_initialized() else 0
    module = engine.module
    with tempfile.TemporaryDirectory(prefix="ptft-export-") as local:
        params = list(module.parameters()) if zero_stage == 3 else []
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=zero_stage == 3):
            if rank == 0:
                module.save_pretrained(local, safe_serialization=True)
                tokenizer.save_pretrained(local)
        if rank == 0:
            publish_dir(local, TrainOutput(output_dir).model)
    if dist.is_initialized():
        dist.barrier()
    return TrainOutput(output_dir).model if rank == 0 else None


def export_adapter(engine: Any, tokenizer: Any, output_dir: str, zero_stage: int, method: Any, base: str,
                   revision: str | None) -> None:
    """Write the peft adapter to `output_dir/adapter` and, for LoRA, the merged model to `output_dir/model`
    (collective).

    Under ZeRO-3 the adapter's parameters are gathered first: saved without, every rank's adapter file
    would hold empty tensors (docs/methods.md §3). The merge runs in a fresh process from the saved adapter
    and the base checkpoint, never under ZeRO-3 (where peft's merge fails).
    """
    import deepspeed

    from trainers.adapters import peft_model_of, trainable_parameters

    rank = dist.get_rank() if dist.is_initialized() else 0
    peft_model = peft_model_of(engine.module)
    out = TrainOutput(output_dir)
    with tempfile.TemporaryDirectory(prefix="ptft-export-") as local:
        adapter_dir = os.path.join(local, "adapter")
        params = trainable_parameters(engine.module) if zero_stage == 3 else []
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=zero_stage == 3):
            if rank == 0:
                config = peft_model.peft_config["default"]
                config.base_model_name_or_path, config.revision = base, revision  # what the adapter sits on
                peft_model.save_pretrained(adapter_dir, safe_serialization=True)
                _sort_target_modules(os.path.join(adapter_dir, "adapter_config.json"))
                tokenizer.save_pretrained(adapter_dir)
        if rank == 0:
            if method.mergeable:
                merged_dir = os.path.join(local, "model")
                merge_in_fresh_process(adapter_dir, merged_dir)
                publish_dir(merged_dir, out.model)
            publish_dir(adapter_dir, out.adapter)
    if dist.is_initialized():
        dist.barrier()


def _sort_target_modules(config_path: str) -> None:
    """peft writes an expanded target set in set order (it varies per process): sort it, so the same
    training writes the same bytes (the adapter's hash is part of its eval cache key)."""
    import json

    with open(config_path) as f:
        config = json.load(f)
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        with open(config_path, "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)


def merge_in_fresh_process(adapter_dir: str, merged_dir: str) -> None:
    """`python -m trainers.merge ADAPTER OUT` in a child process (its own memory, no DeepSpeed state)."""
    import sys

    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    result = subprocess.run([sys.executable, "-m", "trainers.merge", adapter_dir, merged_dir], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"merging the LoRA adapter failed (exit {result.returncode}):\n{result.stderr[-4000:]}")


def publish_dir(local_dir: str, dest: str) -> None:
    """Copy a finished local directory to `dest` so it appears whole (local rename, or one PUT per file)."""
    if storage.is_remote(dest):
        for root, _, files in os.walk(local_dir):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), local_dir)
                storage.atomic_write_bytes(storage.join(dest, rel), Path(root, name).read_bytes())
        return
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-model-", dir=parent)
    shutil.copytree(local_dir, staging, dirs_exist_ok=True)
    if os.path.exists(dest):  # left by a run that died before its COMPLETED marker
        shutil.rmtree(dest)
    os.replace(staging, dest)


def read_completed(output_dir: str) -> dict[str, Any] | None:
    """The stored manifest when `output_dir` has a COMPLETED marker that verifies, else None."""
    out = TrainOutput(output_dir)
    if not storage.exists(out.completed):
        return None
    problem = train_output_problem(out)
    if problem is not None:  # the marker vouches for a model that is gone or changed: train again
        log.warning("not trusting %s: %s; training again", out.completed, problem)
        return None
    return storage.read_json(out.manifest)


def write_manifest_and_marker(output_dir: str, manifest: dict[str, Any]) -> None:
    """Manifest first, marker last: a crash in between leaves a run that is not done."""
    out = TrainOutput(output_dir)
    storage.atomic_write_json(out.manifest, manifest)
    storage.atomic_write_json(out.completed, {"trial_id": manifest.get("trial_id")})
