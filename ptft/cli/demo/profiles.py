"""The demo's two sizes (full and `--quick`) and the grid spec each one writes.

Budget on a 2-core CPU box: a trial trains in a reused Tune actor (about 2 s of fixed cost each, two at
a time) and every evaluated model pays a few seconds to load; the pre-training is what buys the
structure in the results, and takes the largest share of the demo's time.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from ptft.cli.demo.pretrain import PretrainConfig

EVAL_DATASETS = ("mnli_matched", "rte", "paws", "qqp", "stsb", "xsum", "cnn")


@dataclass(frozen=True)
class DemoProfile:
    """One size of the demo: the pre-training run and the grid over its checkpoints."""

    name: str
    pretrain: PretrainConfig
    train_datasets: tuple[str | dict[str, Any], ...]  # names, or spec entries with per-dataset lrs
    learning_rates: tuple[float, ...]
    train_formats: tuple[str, ...] = ("default",)
    max_steps: int = 40
    train_batch_size: int = 8
    eval_datasets: tuple[str, ...] = EVAL_DATASETS
    eval_formats: tuple[str, ...] = ("default",)
    # 0-shot: the tiny models copy the labels of the few shots in front of them (one fixed draw for every
    # example), which would hide what they learned; the corpus already taught the base models the formats.
    shots: int = 0
    eval_limit: int = 48
    max_new_tokens: int = 16
    extra_train: dict[str, Any] = field(default_factory=dict)
    # Fine-tuning methods beside full fine-tuning (train.methods entries); datasets name theirs.
    methods: tuple[str | dict[str, Any], ...] = ("full",)
    # Multi-stage recipes beside the plain cells (docs/recipes.md).
    recipes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def dataset_names(self) -> tuple[str, ...]:
        return tuple(d if isinstance(d, str) else d["name"] for d in self.train_datasets)


# LoRA beside full fine-tuning on mnli: rank 8 on every linear layer at its own (larger) lr. On the tiny
# model it learns clearly less in 40 steps than full fine-tuning does; the report's method comparison
# shows how much, and what each forgets.
LORA = {"name": "lora", "r": 8, "alpha": 32, "dropout": 0.0, "learning_rates": [1e-2]}

# Two recipes beside the plain cells. Continual pre-training on a domain the demo's pre-training never saw
# (the `recipes` corpus, with a quarter of the documents replayed from the old one), then mnli; and the
# plain mnli cell (shared, trained once) followed by DPO on a preference set built so the preference is
# learnable (the correct label or summary against a wrong one): its held-out reward accuracy rises from
# 0.5 (a margin of 0 at the reference) to about 0.9 in 40 steps.
RECIPES = {
    "cpt-then-mnli": [
        {"kind": "continual_pt", "dataset": "recipes", "learning_rates": [2e-3], "max_steps": 30,
         "replay": {"dataset": "demo_pretrain", "ratio": 0.25}},
        {"kind": "sft", "datasets": ["mnli"], "learning_rates": [3e-3]},
    ],
    "mnli-then-dpo": [
        {"kind": "sft", "datasets": ["mnli"]},
        {"kind": "dpo", "dataset": "demo_prefs", "learning_rates": [3e-3], "max_steps": 40, "beta": 0.1},
    ],
}

FULL = DemoProfile(
    name="demo",
    pretrain=PretrainConfig(),
    # mnli shows lr selection (two lrs) and LoRA beside full fine-tuning; paws and xsum run full
    # fine-tuning at one lr each, as the study fixes xsum's.
    train_datasets=({"name": "mnli", "methods": ["full", "lora-r8"]},
                    {"name": "paws", "learning_rates": [3e-3], "methods": ["full"]},
                    {"name": "xsum", "learning_rates": [2e-3], "methods": ["full"]}),
    learning_rates=(1e-3, 3e-3),
    eval_formats=("default", "instruct"),
    methods=("full", LORA),
    recipes=RECIPES,
)

QUICK = DemoProfile(
    name="demo-quick",
    pretrain=PretrainConfig(n_docs=4000, checkpoint_steps=(40, 200)),
    train_datasets=("mnli",),
    learning_rates=(3e-3,),
    methods=("full", LORA),
    max_steps=30,
    eval_datasets=("mnli_matched", "rte", "paws", "xsum"),
    eval_limit=32,
)


def with_seed(profile: DemoProfile, seed: int) -> DemoProfile:
    """The same demo with every seed shifted by `seed` (0: the profile unchanged)."""
    if seed == 0:
        return profile
    p = profile.pretrain
    pretrain = dataclasses.replace(p, seed=p.seed + seed, corpus_seed=p.corpus_seed + seed)
    return dataclasses.replace(profile, name=f"{profile.name}-seed{seed}", pretrain=pretrain,
                               extra_train={**profile.extra_train, "seed": 42 + seed})


def grid_spec(profile: DemoProfile, checkpoints: dict[int, str], storage: str) -> dict[str, Any]:
    """The experiment spec (as YAML-ready data) for `profile` over the pre-trained `checkpoints`."""
    steps = sorted(checkpoints)
    n_params = None
    params_file = os.path.join(os.path.dirname(checkpoints[steps[-1]]), "pretrain.json")
    if os.path.isfile(params_file):
        import json

        with open(params_file, encoding="utf-8") as f:
            n_params = json.load(f).get("n_params")
    model: dict[str, Any] = {"id": checkpoints[steps[-1]], "name": "ptft-demo-tiny-olmo",
                             "checkpoints": [{"path": checkpoints[s], "step": s} for s in steps]}
    if n_params:
        model["num_params"] = n_params
    return {
        "name": profile.name,
        "model": model,
        "data": {"source": "mini"},
        "train": {
            "datasets": [d if isinstance(d, str) else dict(d) for d in profile.train_datasets],
            "formats": list(profile.train_formats), "mode": "fixed",
            "learning_rates": list(profile.learning_rates),
            "methods": [m if isinstance(m, str) else dict(m) for m in profile.methods],
            "epochs": 1, "batch_size": profile.train_batch_size,
            "grad_accum": 1, "max_length": 256, "zero_stage": 2, "precision": "fp32", "warmup_ratio": 0.1,
            "val_size": 32, "max_steps": profile.max_steps, "log_every": 10,
            # one checkpoint at the end: mid-run ones cost seconds each and a 40-step trial rarely needs one
            "checkpoint_every": profile.max_steps, **profile.extra_train,
        },
        **({"recipes": {name: [dict(stage) for stage in stages] for name, stages in profile.recipes.items()}}
           if profile.recipes else {}),
        "eval": {
            "datasets": list(profile.eval_datasets), "formats": list(profile.eval_formats),
            "shots": [profile.shots], "mode": "fixed", "limit": profile.eval_limit, "batch_size": 16,
            "max_new_tokens": profile.max_new_tokens, "max_length": 512, "bootstrap_resamples": 200,
        },
        "resources": {"workers_per_trial": 1, "gpus_per_worker": 0, "cpus_per_worker": 0.9,
                      "max_concurrent_trials": 2, "max_failures": 1, "eval_gpus_per_worker": 0,
                      "eval_cpus_per_worker": 0.9, "max_concurrent_evals": 2},
        "storage": storage,
        "wandb": {"project": "ptft-demo", "mode": "offline"},
    }
