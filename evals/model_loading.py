"""Loading a causal LM (hub id + revision, or a local directory) and its tokenizer for scoring."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from ptft.core import storage


class ModelLoadError(RuntimeError):
    """The model or its tokenizer could not be loaded; the message names the model and revision."""


def _describe(path_or_id: str, revision: str | None) -> str:
    return f"model {path_or_id!r} (revision {revision or 'default'!r})"


@dataclass
class LoadedModel:
    """A model ready for scoring, with what the engine needs to know about it."""

    model: Any  # transformers PreTrainedModel, in eval mode
    tokenizer: Any
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    max_length: int  # the most tokens one sequence may hold (context + continuation), virtual tokens excluded
    window: int | None = None  # the model's trained positions (max_position_embeddings); None: max_length
    # Prompt-tuned and P-tuned models: the learned virtual-token embeddings [n, hidden] every sequence
    # starts with (positions 0..n-1); the engine runs them as the first part of its shared prefix.
    virtual_prefix: Any = None

    @property
    def prefix_length(self) -> int:
        return 0 if self.virtual_prefix is None else int(self.virtual_prefix.shape[0])

    @property
    def trained_window(self) -> int:
        """The positions the model was trained on: faithful mode feeds past them and counts who did."""
        return int(self.window) if self.window else self.max_length

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0

    @property
    def eos_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    @property
    def empty_context_id(self) -> int:
        """The token an empty context is scored (or generated) after: bos if the tokenizer has one,
        else eos, else pad, as lm-eval's HF backend does (`HFLM.prefix_token_id`).

        Ids are tested with `is None`, never truthiness: 0 is a real id (Pythia's eos and bos).
        """
        bos = self.tokenizer.bos_token_id
        if bos is not None:
            return int(bos)
        eos = self.eos_id
        if eos is not None:
            return int(eos)
        return self.pad_id


def resolve_device(device: str | None = None):
    """`device` as given, else cuda when available, else cpu."""
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(precision: str, device, mode: str = "fixed", stored: str | None = None) -> Any:
    """The dtype a model is loaded in. `device` is a torch.device or its name ("cuda", "cuda:1", "cpu").

    fixed, auto: bf16 on GPU, fp32 on CPU (bf16 matmuls are slow and lossy on most CPUs).
    faithful, auto: the checkpoint's stored dtype (`stored`, its config's `torch_dtype`/`dtype`), as the
    study's `torch_dtype="auto"` loaded it, on any device; fp32 when the config names none.
    bf16 / fp32: as asked, in both modes.
    """
    import torch

    if precision == "auto" and mode == "faithful":
        name = str(stored).replace("torch.", "") if stored else "float32"
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"checkpoint dtype {stored!r} is not a torch dtype")
        return dtype
    kind = device.type if hasattr(device, "type") else str(device).split(":")[0]
    if precision == "bf16" or (precision == "auto" and kind == "cuda"):
        return torch.bfloat16
    return torch.float32


def stored_dtype(config) -> str | None:
    """The dtype a checkpoint's config.json records (`dtype` in transformers 5, `torch_dtype` before)."""
    for name in ("dtype", "torch_dtype"):
        value = getattr(config, name, None)
        if value is not None:
            return str(value).replace("torch.", "")
    return None


def load_tokenizer(path_or_id: str, revision: str | None = None):
    """The model's tokenizer; `ModelLoadError` naming the model when it cannot be loaded."""
    from transformers import AutoTokenizer

    # A local path that is not there would otherwise be tried as a hub id ("Repo id must be in the form").
    local = path_or_id.startswith(("/", "./", "../", "~")) or path_or_id.count("/") >= 2
    if local and not is_uri(path_or_id) and not os.path.isdir(os.path.expanduser(path_or_id)):
        raise ModelLoadError(f"model directory {path_or_id!r} does not exist"
                             + (f" (revision {revision!r} is for hub models)" if revision else ""))
    try:
        return AutoTokenizer.from_pretrained(path_or_id, revision=revision)
    except Exception as exc:  # hub, file and config errors all mean the same to the caller
        raise ModelLoadError(f"could not load the tokenizer of {_describe(path_or_id, revision)}: {exc}") from exc


def load_model(path_or_id: str, revision: str | None = None, precision: str = "auto",
               device: str | None = None, max_length: int = 2048, tokenizer=None,
               dtype: Any = None, adapter: str | None = None) -> LoadedModel:
    """Load a causal LM for inference; `ModelLoadError` naming the model and revision on any failure.

    `dtype` (a torch dtype) overrides `precision` (the runner resolves it per mode, `resolve_dtype`).
    `adapter`: a local peft adapter folder on this base. LoRA is merged into the weights in memory; a
    prompt-learning adapter becomes `virtual_prefix` (its encoder's output, computed once).
    """
    from transformers import AutoModelForCausalLM

    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(path_or_id, revision)
    dev = resolve_device(device)
    dtype = dtype if dtype is not None else resolve_dtype(precision, dev)
    try:
        model = AutoModelForCausalLM.from_pretrained(path_or_id, revision=revision, dtype=dtype)
    except Exception as exc:
        raise ModelLoadError(f"could not load {_describe(path_or_id, revision)}: {exc}") from exc
    model.to(dev)
    model.eval()
    virtual = None
    if adapter is not None:
        model, virtual = _apply_adapter(model, adapter, path_or_id, revision)
    positions = getattr(model.config, "max_position_embeddings", None) or max_length
    n = 0 if virtual is None else int(virtual.shape[0])
    return LoadedModel(model=model, tokenizer=tokenizer, device=dev, dtype=dtype,
                       max_length=min(max_length, int(positions)) - n, window=int(positions) - n,
                       virtual_prefix=virtual)


def _apply_adapter(model, adapter: str, path_or_id: str, revision: str | None):
    """(model to score, virtual prefix or None) for a peft adapter on `model`."""
    import torch
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(model, adapter)
    except Exception as exc:
        raise ModelLoadError(f"could not load adapter {adapter!r} on {_describe(path_or_id, revision)}: "
                             f"{exc}") from exc
    peft_model.eval()
    if not peft_model.active_peft_config.is_prompt_learning:
        return peft_model.merge_and_unload(), None
    with torch.inference_mode():
        virtual = peft_model.get_prompt(batch_size=1)[0].detach().to(model.dtype)
    return peft_model.get_base_model(), virtual


def adapter_virtual_tokens(adapter: str) -> int:
    """Virtual tokens a peft adapter folder prepends (0 for LoRA), read from its config alone."""
    with open(os.path.join(adapter, "adapter_config.json")) as f:
        config = json.load(f)
    return int(config.get("num_virtual_tokens") or 0) if config.get("peft_type") != "LORA" else 0


def is_uri(path_or_id: str) -> bool:
    """A directory in object storage (`s3://…`, `gs://…`, `file://…`); hub ids never hold "://"."""
    return "://" in path_or_id


def local_model_copy(uri: str, cache_root: str | None = None) -> str:
    """A local copy of a model directory in object storage, which `from_pretrained` cannot read.

    Cached under `cache_root` (default `$PTFT_MODEL_CACHE`, else ~/.cache/ptft/models) by URI, and
    fetched again when the remote listing (names and sizes) differs from the one the copy was made from.
    """
    from ptft.core.ids import content_hash

    root = cache_root or os.environ.get("PTFT_MODEL_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "ptft", "models")
    dest = os.path.join(root, content_hash({"uri": uri}, length=16))
    try:
        return storage.local_copy(uri, dest)
    except FileNotFoundError:
        raise ModelLoadError(f"model directory {uri!r} is empty or does not exist") from None
    except Exception as exc:  # credentials, bucket, network: the caller reports the model by name
        raise ModelLoadError(f"could not fetch model directory {uri!r}: {exc}") from exc


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".json", ".model", ".txt")


def weights_hash(directory: str, chunk_bytes: int = 1 << 24) -> str:
    """sha256 over a local model directory's weight, config and tokenizer files (names and contents).

    The cache key of a local model must change when the weights change, whatever the folder is called.
    """
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not name.endswith(_WEIGHT_SUFFIXES):
                continue
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, directory).encode("utf-8") + b"\0")
            with open(path, "rb") as f:
                while chunk := f.read(chunk_bytes):
                    digest.update(chunk)
    return digest.hexdigest()[:16]
