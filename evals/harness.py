"""lm-evaluation-harness tasks on a ptft model: `run_harness` scores a model with lm-eval's own tasks
(`lm_eval.simple_evaluate`) and turns lm-eval's results into ptft `ResultRecord`s (docs/harness.md).

lm-eval is an optional extra (`pip install 'ptft[harness]'`); nothing here imports it at module level,
so ptft runs without it and a spec that asks for harness tasks fails with that install line.

The model is loaded by ptft's own loader (`evals.model_loading.load_model`: the same weights, dtype and
adapter handling as ptft's records of that model) and handed to lm-eval's HF backend as an object.
Records carry the model's `ModelIdentity`, `source="lm_eval"` and `eval_format="lm_eval"` (lm-eval's
prompt, not one of ptft's formats), so they sit beside ptft's records and are never paired with them.

One marker per (model, task set) under the model's eval folder, `harness/<name>.json`, holds the records
and the cache key; it is written last, after lm-eval's per-sample log and results. A rerun whose key
matches skips the work without loading the model; a changed setting recomputes in place.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

from evals.jobs import ModelRef
from evals.model_loading import (
    load_model,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
)
from evals.results import ResultRecord, read_records, write_records
from ptft.core import storage
from ptft.core.ids import content_hash
from ptft.core.layout import EvalOutput

log = logging.getLogger(__name__)

HARNESS_SOURCE = "lm_eval"  # ResultRecord.source of every record made here (evals/results.py: SOURCES)
HARNESS_FORMAT = "lm_eval"  # their eval_format: lm-eval's task template, not a ptft format
SUPPORTED = ((0, 4, 13), (0, 5, 0))  # [low, high): the API and results layout this module reads
INSTALL_HINT = "pip install 'ptft[harness]'"


class HarnessError(ValueError):
    """lm-eval missing or of an unsupported version, or a task name it does not know."""


@dataclass(frozen=True)
class HarnessConfig:
    """Which lm-eval tasks every evaluated model runs, and how (the spec's `eval.harness_*` fields)."""

    tasks: tuple[str, ...]
    num_fewshot: int | None = None  # None: each task's own default (lm-eval's rule)
    limit: int | None = None  # first N documents of each task (lm-eval's `limit`)
    include_path: str | None = None  # a folder of the user's task YAMLs, absolute
    batch_size: int = 16
    max_length: int = 2048
    precision: str = "auto"
    device: str | None = None
    fewshot_seed: int = 1234
    bootstrap_iters: int = 3000  # lm-eval's stderr of non-mean metrics (mean metrics: analytic)

    def defining(self) -> dict[str, Any]:
        """The fields that change a number (the cache key's); batch size and device do not."""
        return {"tasks": sorted(self.tasks), "num_fewshot": self.num_fewshot, "limit": self.limit,
                "max_length": self.max_length, "precision": self.precision, "fewshot_seed": self.fewshot_seed,
                "bootstrap_iters": self.bootstrap_iters}


# ------------------------------------------------------------------------------ availability, tasks
def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))


def require_lm_eval() -> str:
    """lm-eval's version; `HarnessError` with the install line when it is missing or out of range."""
    low, high = SUPPORTED
    wanted = f"lm-eval>={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
    try:
        import lm_eval
    except ImportError:
        raise HarnessError(f"lm-evaluation-harness is not installed ({wanted}); {INSTALL_HINT}") from None
    version = str(getattr(lm_eval, "__version__", "0"))
    if not low <= _version_tuple(version) < high:
        raise HarnessError(f"lm-eval {version} is installed, but ptft reads the results of {wanted}; "
                           f"{INSTALL_HINT}")
    return version


@functools.lru_cache(maxsize=4)
def task_manager(include_path: str | None = None):
    """lm-eval's TaskManager over its built-in tasks plus `include_path` (indexing takes seconds: once)."""
    require_lm_eval()
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path)


def check_tasks(tasks: list[str] | tuple[str, ...], include_path: str | None = None,
                field: str = "harness_tasks") -> None:
    """Every name is an lm-eval task, group or tag; else `HarnessError` naming the field and close matches."""
    if include_path is not None and not os.path.isdir(include_path):
        raise HarnessError(f"harness_include_path: {include_path!r} is not a folder")
    manager = task_manager(include_path)
    known = set(manager.all_tasks)
    for i, name in enumerate(tasks):
        if name in known:
            continue
        close = difflib.get_close_matches(name, manager.all_tasks, n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        where = f" (built-in tasks and {include_path})" if include_path else ""
        raise HarnessError(f"{field}[{i}]: unknown lm-eval task {name!r}{where}{hint}")


def _folder_digest(path: str | None) -> str | None:
    """sha256 over a folder's file names and bytes: an edited user task YAML changes the cache key."""
    if path is None:
        return None
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(files):
            if name.startswith("."):
                continue
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode("utf-8") + b"\0")
            with open(full, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def _task_configs(config: HarnessConfig) -> dict[str, Any]:
    """The index entry (YAML as lm-eval parsed it, functions unresolved) of each named task, read
    without loading any data: the part of the cache key that says which task definition ran."""
    index = task_manager(config.include_path).task_index
    return {name: json.loads(json.dumps(index[name].cfg, default=str, sort_keys=True)) for name in config.tasks}


def run_name(config: HarnessConfig) -> str:
    """The marker's file name: per task set (a changed setting recomputes the same file in place)."""
    return f"{HARNESS_SOURCE}.{content_hash(sorted(config.tasks), length=8)}"


# ------------------------------------------------------------------------------ results -> records
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(float(value)) else float(value)


def records_from_results(results: dict[str, Any], model: ModelRef, config: HarnessConfig,
                         extra: dict[str, Any]) -> list[ResultRecord]:
    """One record per (task or group, numeric metric) of `simple_evaluate`'s results.

    lm-eval keys a metric as "name,filter": the metric is `name` under the "none" filter, else
    "name,filter" (e.g. "exact_match,strict-match"); "<name>_stderr,<filter>" is its std.
    """
    assert model.identity is not None
    groups = set(results.get("groups", {})) | set(results.get("group_subtasks", {}))
    samples = results.get("n-samples", {})
    records = []
    for task in sorted(results["results"]):
        metrics = results["results"][task]
        is_group = task in groups and task not in samples
        counts = samples.get(task, {})
        shots = results.get("n-shot", {}).get(task)
        if shots is None and is_group:  # a group's shots are its subtasks' (when they agree)
            below = {results.get("n-shot", {}).get(t) for t in results.get("group_subtasks", {}).get(task, [])}
            shots = below.pop() if len(below) == 1 else None
        for key in sorted(metrics):
            if "," not in key or "_stderr," in key:
                continue
            value = _number(metrics[key])
            if value is None:  # "N/A" and NaN: not a number the analysis can use
                continue
            name, filt = key.split(",", 1)
            metric = name if filt == "none" else key
            std = _number(metrics.get(f"{name}_stderr,{filt}"))
            task_config = results.get("configs", {}).get(task)
            records.append(ResultRecord(
                **dataclasses.asdict(model.identity), eval_dataset=task, eval_format=HARNESS_FORMAT,
                shots=int(shots) if isinstance(shots, int) else 0, metric=metric, value=value, std=std,
                n=counts.get("effective"), mode="fixed", source=HARNESS_SOURCE,
                engine_version=f"lm_eval-{extra.get('harness_version')}",
                extra={**extra, "lm_eval_metric": key, "filter": filt, "kind": "group" if is_group else "task",
                       "task_version": results.get("versions", {}).get(task),
                       "task_hash": content_hash(task_config, length=16) if task_config else None,
                       "n_shot": shots, "n_samples": counts or None, "limit": config.limit,
                       "higher_is_better": results.get("higher_is_better", {}).get(task, {}).get(name)},
            ))
    return records


# ------------------------------------------------------------------------------ the lm-eval model
def _hflm(loaded, batch_size: int):
    """lm-eval's HF backend over ptft's loaded model; a prompt-learning adapter's virtual tokens go
    first in every forward (lm-eval's own `peft=` would misalign logits by the virtual tokens)."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.models.utils_hf import stop_sequences_criteria

    class PtftHFLM(HFLM):
        def _model_call(self, inps, attn_mask=None, labels=None):
            if loaded.virtual_prefix is None:
                return super()._model_call(inps, attn_mask, labels)
            with torch.no_grad():
                embeds = self.model.get_input_embeddings()(inps)
                prefix = loaded.virtual_prefix[None].to(embeds.dtype).expand(inps.shape[0], -1, -1)
                logits = self.model(inputs_embeds=torch.cat([prefix, embeds], dim=1)).logits
            return logits[:, loaded.prefix_length:]  # the text's positions, as lm-eval indexes them

        def _model_generate(self, context, max_length, stop, **generation_kwargs):
            if loaded.virtual_prefix is None:
                return super()._model_generate(context, max_length, stop, **generation_kwargs)
            generation_kwargs.pop("temperature", None)
            generation_kwargs.setdefault("do_sample", False)
            pad = loaded.pad_id
            mask = generation_kwargs.pop("attention_mask", None)  # lm-eval's left padding of the batch
            mask = mask if mask is not None else torch.ones_like(context)
            rows = []
            # Row by row: pads between the virtual tokens and the text would move the text's positions
            # (ptft's engine puts it right after the virtual tokens).
            for row, row_mask in zip(context, mask, strict=True):
                ids = row[int(row_mask.nonzero()[0]):][None] if bool(row_mask.any()) else row[-1:][None]
                embeds = torch.cat([loaded.virtual_prefix[None].to(self.model.dtype),
                                    self.model.get_input_embeddings()(ids)], dim=1)
                # From embeddings, generate returns only the new tokens: the stop check starts at 0.
                stopping = stop_sequences_criteria(self.tokenizer, stop, 0, 1)
                new = self.model.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2],
                                          dtype=torch.long, device=ids.device),
                                          max_new_tokens=max_length - context.shape[1], stopping_criteria=stopping,
                                          pad_token_id=pad, use_cache=True, **generation_kwargs)[0]
                rows.append(torch.cat([row, new]))
            width = max(len(r) for r in rows)  # lm-eval slices each row after the context it passed
            return torch.stack([torch.cat([r, r.new_full((width - len(r),), pad)]) for r in rows])

    return PtftHFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=batch_size,
                    max_length=loaded.max_length, device=str(loaded.device))


def merge_results(out: EvalOutput, records: list[ResultRecord]) -> None:
    """`results.jsonl` = the folder's other records (ptft's, rewritten by `evaluate_model`) + these.

    Records of an earlier harness task set are dropped: the table shows what the spec asks now.
    """
    kept = [r for r in read_records(out.results) if r.source != HARNESS_SOURCE] if storage.exists(out.results) else []
    write_records(out.results, [*kept, *records])


def _read_marker(path: str) -> dict[str, Any] | None:
    if not storage.exists(path):
        return None
    try:
        marker = storage.read_json(path)
        marker["records"] = [ResultRecord.from_dict(row) for row in marker["records"]]
        return marker
    except (ValueError, TypeError, KeyError) as exc:  # half-written by an older schema: recompute
        log.warning("ignoring unreadable harness marker %s: %s", path, exc)
        return None


# ------------------------------------------------------------------------------ run
def run_harness(model: ModelRef, config: HarnessConfig, out_dir: str) -> list[ResultRecord]:
    """Run `config.tasks` on `model` through `lm_eval.simple_evaluate`; one record per task x metric.

    Skips the run (no model load) when the marker's cache key matches: the model's identity
    (`evals.runner.model_identity`), lm-eval's version, the tasks' definitions and the settings that
    change numbers. Writes `<name>.samples.jsonl` and `<name>.results.json`, then the marker, then
    `results.jsonl` with ptft's records of the model and these. Raises `HarnessError` before loading
    anything when lm-eval is missing or a task is unknown.
    """
    from evals.runner import model_identity  # lazily: the spec imports this module, numpy not needed there

    version = require_lm_eval()
    check_tasks(config.tasks, config.include_path)
    out = EvalOutput(out_dir)
    source, adapter = model.local_sources()
    model_id = model_identity(model, source, adapter)
    device = resolve_device(config.device)
    dtype = str(resolve_dtype(config.precision, device)).replace("torch.", "")
    inputs = {"harness": HARNESS_SOURCE, "harness_version": version, "model": model_id,
              "settings": config.defining(), "dtype": dtype, "task_configs": _task_configs(config),
              "include_path_sha256": _folder_digest(config.include_path)}
    cache_key = content_hash(inputs, length=16)
    name = run_name(config)
    marker_path = out.harness(name)
    marker = _read_marker(marker_path)
    if marker is not None and marker.get("cache_key") == cache_key:
        merge_results(out, marker["records"])
        return marker["records"]

    import lm_eval
    from lm_eval.utils import handle_non_serializable

    tokenizer = load_tokenizer(source, model.revision)
    loaded = load_model(source, model.revision, config.precision, config.device, config.max_length,
                        tokenizer=tokenizer, adapter=adapter)
    results = lm_eval.simple_evaluate(
        model=_hflm(loaded, config.batch_size), tasks=list(config.tasks), num_fewshot=config.num_fewshot,
        limit=config.limit, task_manager=task_manager(config.include_path), bootstrap_iters=config.bootstrap_iters,
        log_samples=True, fewshot_random_seed=config.fewshot_seed, random_seed=0, numpy_random_seed=1234,
        torch_random_seed=1234)
    samples = results.pop("samples", {})
    results.pop("pretty_env_info", None)  # the machine's hardware dump: not a result
    samples_path = out.harness_file(name, "samples.jsonl")
    storage.atomic_write_jsonl(samples_path, (json.loads(json.dumps({"task": task, **row}, default=handle_non_serializable))
                                              for task in sorted(samples) for row in samples[task]))
    results = json.loads(json.dumps(results, default=handle_non_serializable))
    storage.atomic_write_json(out.harness_file(name, "results.json"), results)
    extra = {"harness": HARNESS_SOURCE, "harness_version": version, "cache_key": cache_key,
             "model_key": content_hash(model_id, length=16), "path_or_id": model.path_or_id,
             "revision": model.revision, "adapter": model.adapter, "dtype": dtype, "device": str(loaded.device),
             "include_path": config.include_path}
    records = [dataclasses.replace(r, predictions=samples_path)
               for r in records_from_results(results, model, config, extra)]
    if not records:
        raise HarnessError(f"lm-eval reported no numeric metric for {list(config.tasks)}")
    storage.atomic_write_json(marker_path, {"cache_key": cache_key, "cache_inputs": inputs,
                                            "records": [r.to_dict() for r in records]})  # the marker: last
    merge_results(out, records)
    return records
