"""`evaluate_model`: load a model once, score all its eval jobs, write records and predictions.

`out_dir` is an `EvalOutput` folder (ptft/core/layout.py): per-example predictions first, then the
job's `ResultRecord` as its completion marker, then `results.jsonl` with every record of this model.

A job whose marker exists with the same cache key is skipped without loading the model. The key covers
the model's identity (revision, or a hash of a local directory's weights), dataset, format, shots, mode,
the eval set's checksum (rendered contexts, targets, candidates), the engine version and the settings
that change scores.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from evals.bootstrap import bootstrap_mean
from evals.config import EvalConfig
from evals.jobs import ENGINE_VERSION, EvalJob, ModelRef
from evals.model_loading import (
    LoadedModel,
    ModelLoadError,
    adapter_virtual_tokens,
    is_uri,
    load_model,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
    stored_dtype,
    weights_hash,
)
from evals.results import ResultRecord, write_records
from evals.scoring import ScoredSet, score_eval_set, scoring_kind
from ptft.core import storage
from ptft.core.identity import identity_of
from ptft.core.ids import content_hash
from ptft.core.layout import EvalOutput

log = logging.getLogger(__name__)

__all__ = ["EvalJob", "ModelRef", "evaluate_model", "validate_jobs", "ENGINE_VERSION"]


def validate_jobs(jobs: list[EvalJob], default_mode: str, data_source: str = "hub") -> None:
    """Fail before any loading on an unknown dataset (`tasks.UnknownTaskError`, with a suggestion), a
    format or mode the dataset lacks, a training-only dataset, negative shots, or more shots than the
    few-shot pool holds (ValueError)."""
    from ptft.tasks import get_task
    from ptft.tasks.registry import require_format
    from ptft.tasks.sets import check_shots

    for job in jobs:
        spec = get_task(job.dataset)
        require_format(spec, job.fmt, job.resolved_mode(default_mode))
        if not spec.eval_split:
            raise ValueError(f"{job.dataset} is a training-only dataset and cannot be evaluated")
        scoring_kind(spec.task_type)
        if job.shots < 0:
            raise ValueError(f"{job.dataset}: shots must be >= 0, got {job.shots}")
        check_shots(job.dataset, job.resolved_mode(default_mode), job.shots, data_source)


def _model_config(model: ModelRef, source: str):
    """The model's config (no weights)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, revision=model.revision)
    except Exception as exc:
        raise ModelLoadError(f"could not load the config of model {model.path_or_id!r} "
                             f"(revision {model.revision or 'default'!r}): {exc}") from exc


def _model_max_length(model: ModelRef, source: str, config: EvalConfig, model_config=None) -> int:
    """`config.max_length`, capped at the model's position budget (read from its config, no weights).

    Fixed mode's budget; faithful mode truncates nothing and only counts items past it (`past_window`).
    """
    model_config = model_config if model_config is not None else _model_config(model, source)
    positions = getattr(model_config, "max_position_embeddings", None)
    return min(config.max_length, int(positions)) if positions else config.max_length


def model_identity(model: ModelRef, source: str | None = None, adapter_source: str | None = None) -> dict[str, Any]:
    """What makes two evaluations of "the same model" the same: revision, or the weights' hash; with an
    adapter, the base's identity and the adapter's content hash.

    `source` is where the weights were read from (the local copy of a directory in object storage).
    """
    if model.adapter:
        base = model_identity(ModelRef(model.path_or_id, model.revision, model.identity), source)
        return {"base": base, "adapter_sha256": weights_hash(adapter_source or model.adapter)}
    if is_uri(model.path_or_id):
        return {"uri": model.path_or_id, "weights_sha256": weights_hash(source or model.path_or_id)}
    if model.is_local:
        return {"path": os.path.abspath(model.path_or_id), "weights_sha256": weights_hash(model.path_or_id)}
    return {"hub_id": model.path_or_id, "revision": model.revision or "main"}


def build_eval_set(job: EvalJob, mode: str, config: EvalConfig, tokenizer, max_length: int,
                   data_source: str):
    """The job's `tasks.EvalSet`: fixed mode drops shots to fit the context budget; faithful mode keeps
    all k shots whatever the length, as the study's eval/predict.py did (docs/study.md §8)."""
    from ptft.tasks import eval_set, get_task

    if mode == "faithful":
        return eval_set(job.dataset, job.fmt, mode, job.shots, source=data_source, limit=config.limit,
                        seed=config.fewshot_seed)
    spec = get_task(job.dataset)
    # Generation needs room for its answer; eval_set itself reserves the longest label candidate.
    budget = max_length - (config.max_new_tokens if spec.task_type == "generation" else 0)

    def count_tokens(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    return eval_set(job.dataset, job.fmt, mode, job.shots, source=data_source, limit=config.limit,
                    count_tokens=count_tokens, max_tokens=budget, seed=config.fewshot_seed)


def _cache_inputs(model_id: dict, job: EvalJob, mode: str, es: Any, config: EvalConfig, max_length: int,
                  dtype: str) -> dict[str, Any]:
    """What a cached record must match: the model, the rendered eval set, the engine, and every
    `EvalConfig` field declared to define a result, as resolved here (length cap, dtype)."""
    scoring = identity_of(config) | {"mode": mode, "max_length": max_length, "dtype": dtype}
    return {"engine_version": ENGINE_VERSION, "model": model_id, "dataset": job.dataset, "fmt": job.fmt,
            "shots": job.shots, "template_checksum": es.checksum, "template_version": es.template_version,
            "scoring": scoring}


def _read_marker(path: str) -> ResultRecord | None:
    if not storage.exists(path):
        return None
    try:
        return ResultRecord.from_dict(storage.read_json(path))
    except (ValueError, TypeError) as exc:  # a marker from an older schema: recompute rather than crash
        log.warning("ignoring unreadable record %s: %s", path, exc)
        return None


def _rewrite_results(out: EvalOutput, model_key: str) -> None:
    """`results.jsonl` = every record in the folder's records that belongs to this model."""
    records = [record for record in map(_read_marker, out.record_files())
               if record is not None and record.extra.get("model_key") == model_key]
    write_records(out.results, records)


def _make_record(model: ModelRef, job: EvalJob, job_id: str, mode: str, es: Any, scored: ScoredSet,
                 config: EvalConfig, predictions_path: str, extra: dict[str, Any]) -> ResultRecord:
    boot = bootstrap_mean(scored.scores, config.bootstrap_resamples, config.bootstrap_seed)
    secondary = {name: bootstrap_mean(values, config.bootstrap_resamples, config.bootstrap_seed).to_dict()
                 for name, values in scored.secondary.items()}
    extra = {**extra, "ci_midpoint": boot.ci_midpoint, "secondary_metrics": secondary,
             "counts": {**es.counts, **scored.counts}, "template_version": es.template_version,
             "split": es.split}
    return ResultRecord(
        **dataclasses.asdict(model.identity), eval_dataset=job.dataset, eval_format=job.fmt,
        shots=job.shots, metric=scored.metric, value=boot.mean, std=boot.std, n=boot.n, mode=mode,
        source="ptft", ci_low=boot.ci_low, ci_high=boot.ci_high, predictions=predictions_path, job_id=job_id,
        template_checksum=es.checksum, engine_version=ENGINE_VERSION, bootstrap_seed=config.bootstrap_seed,
        extra=extra,
    )


def evaluate_model(model: ModelRef, jobs: list[EvalJob], config: EvalConfig, out_dir: str,
                   data_source: str = "hub", progress: bool = True,
                   on_record: Callable[[ResultRecord, bool], None] | None = None) -> list[ResultRecord]:
    """Score `model` on every job (loading it at most once, and not at all when every job is cached).

    Returns one `ResultRecord` per job, in job order. `on_record(record, cached)` is called after each
    job (for progress reporting by a caller such as the Ray grid). Raises `tasks.UnknownTaskError` or
    ValueError for a bad job before anything is loaded, and `ModelLoadError` naming the model and
    revision when it cannot be loaded.
    """
    from tqdm.auto import tqdm

    validate_jobs(jobs, config.mode, data_source)
    out = EvalOutput(out_dir)
    # from_pretrained reads local folders and the hub; a folder in object storage is copied here first.
    source, adapter = model.local_sources()
    tokenizer = load_tokenizer(source, model.revision)
    model_config = _model_config(model, source)
    # Virtual tokens take positions: the text budget is what they leave.
    max_length = _model_max_length(model, source, config, model_config) - (
        adapter_virtual_tokens(adapter) if adapter else 0)
    device = resolve_device(config.device)
    # per mode: faithful `auto` is the checkpoint's stored dtype (the study's torch_dtype="auto")
    dtypes = {mode: resolve_dtype(config.precision, device, mode, stored_dtype(model_config))
              for mode in {job.resolved_mode(config.mode) for job in jobs}}
    model_id = model_identity(model, source, adapter)
    model_key = content_hash(model_id, length=16)
    loaded: LoadedModel | None = None
    records: list[ResultRecord] = []
    bar = tqdm(jobs, desc=f"eval {model.describe()}", disable=not progress, dynamic_ncols=True)
    for job in bar:
        mode = job.resolved_mode(config.mode)
        job_id = job.resolved_id(model, config.mode)
        bar.set_postfix_str(job_id)
        torch_dtype = dtypes[mode]
        dtype = str(torch_dtype).replace("torch.", "")
        es = build_eval_set(job, mode, config, tokenizer, max_length, data_source)
        inputs = _cache_inputs(model_id, job, mode, es, config, max_length, dtype)
        cache_key = content_hash(inputs, length=16)
        marker = out.record(job_id)
        cached = _read_marker(marker)
        if cached is not None and cached.extra.get("cache_key") == cache_key:
            records.append(cached)
            if on_record:
                on_record(cached, True)
            continue
        if loaded is None or loaded.dtype != torch_dtype:
            loaded = None  # a job in the other mode's dtype: at most one copy of the weights is held
            loaded = load_model(source, model.revision, config.precision, config.device,
                                config.max_length, tokenizer=tokenizer, dtype=torch_dtype, adapter=adapter)
        started = time.perf_counter()
        scored = score_eval_set(loaded, es, mode, batch_size=config.batch_size,
                                max_new_tokens=config.max_new_tokens, progress=progress)
        seconds = time.perf_counter() - started
        if len(scored.scores) == 0:
            raise ValueError(f"{job_id}: the eval set has no examples to score")
        predictions = out.predictions(job_id, f"{job.dataset}.{job.fmt}.{job.shots}shot")
        storage.atomic_write_jsonl(predictions, scored.records)
        extra = {"cache_key": cache_key, "cache_inputs": inputs, "model_key": model_key,
                 "path_or_id": model.path_or_id, "revision": model.revision, "adapter": model.adapter,
                 "data_source": data_source,
                 "dtype": dtype, "device": str(loaded.device), "batch_size": config.batch_size,
                 "seconds": round(seconds, 3), "examples_per_s": round(len(scored.scores) / max(seconds, 1e-9), 2)}
        record = _make_record(model, job, job_id, mode, es, scored, config, predictions, extra)
        storage.atomic_write_json(marker, record.to_dict())  # the marker: written last
        _rewrite_results(out, model_key)
        records.append(record)
        if on_record:
            on_record(record, False)
    _rewrite_results(out, model_key)
    return records
