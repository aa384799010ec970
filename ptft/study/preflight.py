"""The driver's preflight: everything a plan needs that can fail cheaply, checked before any Ray resource.

A grid that starts with bad data fails inside its Ray workers, a minute per retried trial, with the error
buried in worker logs; so the driver checks first, here, through the same code the workers run:

- `check_checkpoints(plan)`: every local checkpoint directory exists (no hub calls);
- `check_methods(plan)`: every LoRA target module exists in the model (its config, read from the local
  checkpoint or the hub cache: no download);
- `check_storage(root)`: a local storage root can be written (a probe file is created and removed in the
  root, or in its nearest existing parent when the root does not exist yet); object stores are not probed;
- `check_plan_data(plan)`: every split the plan reads loads and renders: each training set's train split
  in each (format, mode) the plan trains, as `trainers` renders it (`tasks.training_set`), and each eval
  set's eval split with its few-shot pool, as `evals` builds it (`tasks.eval_set`, same limit and seed).
  A bad row raises `tasks.DataError` naming file, line, field and the fix. Hub sources are not read
  (that would download); they are skipped with a note in the log.

`preflight(plan)` runs them in that order. Pure: no Ray, nothing written but the probe file.
"""

from __future__ import annotations

import logging
import os
import uuid

from ptft.study.checkpoints import CheckpointResolutionError, check_local_checkpoints, hub_offline, local_path
from ptft.study.plan import Plan
from ptft.study.spec import ExperimentSpec, ModelSpec, qualified_label

log = logging.getLogger(__name__)

HUB_NOTE = ("preflight: data.source is 'hub', so the data is not read before the run (that would download "
            "it); bad rows surface in the workers")


class PreflightError(ValueError):
    """A spec path that cannot work (the storage root, the data folder): names the field and the fix."""


def preflight(plan: Plan, about_to_run: bool = True) -> None:
    """Every cheap check of `plan`, before any Ray resource: checkpoints, storage, then data.

    `about_to_run=False` (`ptft plan`, `--dry-run`) leaves out what only the machine that runs the grid
    must have: with HF_HUB_OFFLINE=1, the hub revisions in its cache (planning stays offline)."""
    register_tasks(plan)
    check_checkpoints(plan, about_to_run)
    check_methods(plan)
    check_reward_models(plan, about_to_run)
    check_storage(plan.spec.storage_root())
    check_plan_data(plan)


def register_tasks(plan: Plan) -> None:
    """The spec's declared tasks, registered in this process (idempotent): the data checks render them.
    A spec read here already registered them; a plan that crossed a process boundary had not."""
    from ptft.tasks import register_declared

    for declaration in plan.spec.tasks:
        register_declared(declaration)


def check_checkpoints(plan: Plan, about_to_run: bool = True) -> None:
    """`CheckpointResolutionError` for a local checkpoint directory that is missing (offline, no hub), for
    one folder named twice (its trials would train twice under two names), and, with HF_HUB_OFFLINE=1,
    for a hub revision the local cache does not hold (the workers could not load it)."""
    spec = plan.spec
    seen: dict[str, str] = {}
    for where, model in _model_fields(spec):
        refs = model.checkpoint_refs()
        try:
            check_local_checkpoints(model.id, refs, spec.base_dir)
        except CheckpointResolutionError as err:  # it names `model.`; in a spec of models:, say which
            raise CheckpointResolutionError(str(err).replace("model.", f"{where}.", 1)) from None
        for i, ref in enumerate(refs):
            if ref.kind == "local":
                folder = os.path.realpath(local_path(ref.path or "", spec.base_dir))
                if folder in seen:
                    raise CheckpointResolutionError(
                        f"{where}.checkpoints[{i}]: {ref.label!r} is the folder {folder}, already checkpoint "
                        f"{seen[folder]!r}; list each checkpoint once")
                seen[folder] = qualified_label(spec.model_name_of(model), ref.label)
        if about_to_run and hub_offline():
            _check_offline_cache(model.id, [r for r in refs if r.kind in ("main", "revision")])


def _model_fields(spec: ExperimentSpec) -> list[tuple[str, ModelSpec]]:
    """Each model with the YAML field that declares it: `model`, or `models[i]`."""
    if spec.models is None:
        return [("model", spec.model_named(None))]
    return [(f"models[{i}]", model) for i, model in enumerate(spec.models)]


def check_methods(plan: Plan) -> None:
    """`PreflightError` naming `train.methods[i].target_modules` when a LoRA target is not a module of the
    model. The config comes from a local checkpoint, else from the hub cache; when neither has it the
    check is left to the workers (planning never downloads)."""
    spec = plan.spec
    loras = [(i, m.method) for i, m in enumerate(spec.train.methods) if m.method.name == "lora"]
    if not loras:
        return
    from trainers.adapters import missing_target_modules

    for _, model in _model_fields(spec):
        model_config = _model_config(model, spec.base_dir)
        if model_config is None:
            log.info("preflight: no local config for %s; LoRA target modules are checked by the workers", model.id)
            continue
        for i, method in loras:
            try:
                missing, linear = missing_target_modules(model_config, method)
            except ValueError as err:
                raise PreflightError(str(err).replace("train.methods[lora]", f"train.methods[{i}]")) from None
            if missing:
                raise PreflightError(
                    f"train.methods[{i}].target_modules: {missing} are not modules of {model.id} "
                    f"({model_config.model_type}); its linear layers are {linear}, or use 'all-linear'")


def _model_config(model: ModelSpec, base_dir: str):
    """The model's config from its first local checkpoint or the hub cache (None when neither has it)."""
    from transformers import AutoConfig

    for ref in model.checkpoint_refs():
        if ref.kind == "local":
            folder = local_path(ref.path or "", base_dir)
            if os.path.isfile(os.path.join(folder, "config.json")):
                return AutoConfig.from_pretrained(folder)
    if os.path.isdir(os.path.expanduser(model.id)):
        return AutoConfig.from_pretrained(os.path.expanduser(model.id))
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model.id, "config.json")
    return AutoConfig.from_pretrained(os.path.dirname(cached)) if isinstance(cached, str) else None


def _check_offline_cache(model_id: str, refs: list) -> None:
    """Offline, a hub revision must be in the local cache (steps are resolved, and refused, by the resolver)."""
    if not refs or os.path.isdir(os.path.expanduser(model_id)):
        return
    from huggingface_hub import try_to_load_from_cache

    for ref in refs:
        found = try_to_load_from_cache(model_id, "config.json", revision=ref.revision)
        if not isinstance(found, str):
            raise CheckpointResolutionError(
                f"checkpoint {ref.label!r}: {model_id}@{ref.revision} is not in the local Hugging Face cache and "
                f"HF_HUB_OFFLINE=1; download it first (`huggingface-cli download {model_id} --revision "
                f"{ref.revision}`) or unset HF_HUB_OFFLINE")


def check_reward_models(plan: Plan, about_to_run: bool = True) -> None:
    """Every rejection_sampling stage's reward model loads as a one-output sequence classifier: a local
    folder always; a hub id when about to run (its config from the hub, or the cache when offline)."""
    from evals.reward_model import RewardModel, RewardModelError, check_reward_model

    seen: set[RewardModel] = set()
    for cell in plan.cells:
        reward = None if cell.rejection is None else cell.rejection.reward
        if not isinstance(reward, RewardModel) or reward in seen:
            continue
        seen.add(reward)
        where = f"recipes: the rejection_sampling stage on {cell.train_dataset} ({cell.label}): reward.model"
        local = os.path.isabs(reward.model)  # the spec made a local folder's path absolute; a hub id never is
        if local and not os.path.isdir(reward.model):
            raise PreflightError(f"{where}: folder {reward.model} does not exist; give a reward model's folder or "
                                 "a hub id")
        if not local and not about_to_run:
            continue
        try:
            check_reward_model(reward)
        except RewardModelError as err:
            raise PreflightError(f"{where}: {err}") from None


def check_storage(root: str) -> None:
    """`PreflightError` unless the local storage root can be written (object stores are not probed)."""
    if "://" in root:
        return
    path = os.path.abspath(os.path.expanduser(root))
    existing = path
    while not os.path.lexists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise PreflightError(f"storage: {root!r} cannot be created: {existing} is not a directory; "
                             "choose a folder you can write")
    probe = os.path.join(existing, f".ptft-write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        created = "" if existing == path else f" (it does not exist yet, and its parent {existing} is not writable)"
        raise PreflightError(f"storage: cannot write to {root!r}{created}: {err.strerror or err}; "
                             "choose a folder you can write") from None


def check_plan_data(plan: Plan) -> None:
    """Load and render every split `plan` uses, as the workers will; `tasks.DataError` on the first bad one.

    Each (dataset, split, source) is read once (the loaders cache it), each training set once per
    (format, mode), each eval set once per (format, mode, shots).
    """
    from ptft import tasks
    from ptft.tasks.sets import check_shots

    spec = plan.spec
    source = spec.data_source()
    if source == "hub":
        log.info(HUB_NOTE)
        return
    if source != "mini" and not os.path.isdir(source):
        raise PreflightError(f"data.source: folder {spec.data.source!r} does not exist ({source}); it should "
                             "hold <dataset>/<split>.jsonl files, or use 'mini' or 'hub'")
    trained: set[tuple[str, str, str]] = set()
    for trial in plan.trials:
        key = (trial.train_dataset, trial.train_format, trial.data_mode)
        if trial.objective.kind != "sft":
            _check_stage_data(trial, source, trained, spec)
            continue
        if key not in trained:
            trained.add(key)
            tasks.training_set(trial.train_dataset, trial.train_format, trial.data_mode, source=source)
    config = spec.eval.eval_config()
    evaluated: set[tuple[str, str, str, int]] = set()
    for planned in plan.eval_jobs:
        job = planned.job
        mode = job.resolved_mode(config.mode)
        key = (job.dataset, job.fmt, mode, job.shots)
        if key in evaluated:
            continue
        evaluated.add(key)
        name = f"eval.shots[{spec.eval.shots.index(job.shots)}]" if job.shots in spec.eval.shots else "shots"
        check_shots(job.dataset, mode, job.shots, source, name=name)
        tasks.eval_set(job.dataset, job.fmt, mode, job.shots, source=source, limit=config.limit,
                       seed=config.fewshot_seed)


def _check_stage_data(trial, source: str, checked: set, spec) -> None:
    """A corpus or preference set a recipe stage reads, each once, through the workers' own loaders: a
    corpus's training and held-out documents (`preflight_data`); a preference set's pairs rendered and
    tokenized with the model's tokenizer (identical or empty responses, a prompt past max_length), when
    the tokenizer is on this machine."""
    key = (trial.objective.kind, trial.train_dataset, trial.config.max_length)
    if key in checked:
        return
    checked.add(key)
    from trainers.objectives import objective_for

    check = getattr(objective_for(trial.objective), "preflight_data", None)
    if check is not None:
        check(trial.train_dataset, source, trial.objective)
    if trial.objective.kind == "dpo":
        tokenizer = _local_tokenizer(spec, trial.model_name)
        if tokenizer is None:
            log.info("preflight: no local tokenizer for %s; the workers check the preference pairs' lengths",
                     trial.train_dataset)
            return
        from trainers.dpo import check_prompt_lengths

        check_prompt_lengths(trial.train_dataset, source, tokenizer, trial.config.max_length,
                             bad_rows=trial.objective.bad_rows)


def _local_tokenizer(spec, model_name: str | None):
    """The tokenizer of a model's first local checkpoint, else of its hub cache; None when neither has it."""
    from transformers import AutoTokenizer

    model = spec.model_named(model_name)
    for ref in model.checkpoint_refs():
        if ref.kind == "local":
            folder = local_path(ref.path or "", spec.base_dir)
            if os.path.isfile(os.path.join(folder, "tokenizer_config.json")):
                return AutoTokenizer.from_pretrained(folder)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model.id, "tokenizer_config.json")
    return AutoTokenizer.from_pretrained(os.path.dirname(cached)) if isinstance(cached, str) else None
