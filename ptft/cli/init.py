"""`ptft init MODEL_ID --steps 1000,2000 [--out spec.yaml]`: scaffold an experiment spec to edit.

It writes the fields a grid needs (model and its pre-training steps, training and eval datasets, learning
rates, resources, storage, W&B), each checked by the spec's own validation before it is written; every
other field keeps its default (`ptft plan` shows what the spec amounts to). Exit status: 0 written,
1 --out exists (use --force), 2 bad arguments.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ptft.cli.flags import CommandLine

EXAMPLES = """examples:
  ptft init allenai/OLMo-1B-hf --steps 1000,18000,342000 --out configs/olmo.yaml
  ptft init allenai/OLMo-1B-hf --steps 1000 --datasets mnli,xsum --eval-datasets mnli_matched,rte,xsum
  ptft plan configs/olmo.yaml            # then: the plan and its cost
"""


class InitOptions(BaseModel):
    """`ptft init`'s options (MODEL_ID is its argument)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[int] = Field(..., min_length=1, description="Pre-training steps to fine-tune from; each is "
                             "resolved to the hub branch of that step when the grid runs.")
    name: str | None = Field(None, description="The grid's name; null: from MODEL_ID (allenai/OLMo-1B-hf -> "
                             "OLMo-1B-hf).")
    datasets: list[str] = Field(default_factory=lambda: ["mnli"], min_length=1,
                                description="Training datasets (`ptft tasks` lists them).")
    eval_datasets: list[str] = Field(default_factory=lambda: ["mnli_matched", "rte"], min_length=1,
                                     description="Eval datasets.")
    learning_rates: list[float] = Field(default_factory=lambda: [2e-6], min_length=1,
                                        description="Learning rates to try per cell (the best is kept).")
    gpus: float = Field(1.0, ge=0, description="GPUs per trial and per evaluation (0: CPU only).")
    storage: str | None = Field(None, description="Where the grid writes (a folder, s3:// or gs://); null: "
                                "runs/NAME.")
    wandb_project: str | None = Field(None, description="W&B project; null: ptft-NAME.")
    out: str | None = Field(None, description="Write the spec to this file; null: print it.")
    force: bool = Field(False, description="Overwrite --out if it exists.")


def command_line() -> CommandLine:
    cli = CommandLine("ptft init", InitOptions, description=__doc__, epilog=EXAMPLES)
    cli.parser.add_argument("model_id", metavar="MODEL_ID",
                            help="hub id of the pre-trained model (allenai/OLMo-1B-hf) or a local model folder")
    return cli


def grid_name(model_id: str) -> str:
    """A spec name from a model id: its last part, with characters a name cannot hold turned into '-'."""
    last = model_id.rstrip("/").rsplit("/", 1)[-1] or "grid"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", last).strip("-._") or "grid"
    return name[:64]


def scaffold(model_id: str, options: InitOptions) -> dict[str, Any]:
    """The spec as a mapping, in the order a reader wants it."""
    name = options.name or grid_name(model_id)
    cpus = 8 if options.gpus else 2
    return {
        "name": name,
        "model": {"id": model_id, "checkpoints": list(options.steps)},
        "data": {"source": "hub"},
        "train": {"datasets": list(options.datasets), "formats": ["default"],
                  "learning_rates": list(options.learning_rates), "epochs": 3},
        "eval": {"datasets": list(options.eval_datasets), "formats": ["default"], "shots": [4]},
        "resources": {"gpus_per_worker": options.gpus, "cpus_per_worker": cpus, "eval_gpus_per_worker": options.gpus,
                      "eval_cpus_per_worker": cpus},
        "storage": options.storage or f"runs/{name}",
        "wandb": {"project": options.wandb_project or f"ptft-{name}", "mode": "auto"},
    }


def render(spec: dict[str, Any], path: str) -> str:
    import yaml

    header = (f"# ptft plan {path}\n# ptft run {path}\n#\n"
              "# Written by `ptft init`; every field not listed keeps its default (docs: README, the spec table).\n")
    return header + yaml.safe_dump(spec, sort_keys=False)


def main(argv: Sequence[str] | None = None) -> int:
    from ptft.cli.flags import fail
    from ptft.study.spec import ExperimentSpec
    from ptft.study.spec_errors import explain

    options, args = command_line().parse(argv)
    spec = scaffold(args.model_id, options)
    try:
        ExperimentSpec.model_validate(spec)  # the spec's own checks: dataset names, steps, the name's pattern
    except ValidationError as err:
        fail("ptft init", explain(err, ExperimentSpec))
    if options.out is None:
        print(render(spec, "SPEC.yaml"), end="")
        return 0
    if os.path.exists(options.out) and not options.force:
        print(f"ptft init: error: {options.out} exists; pass --force to overwrite it", file=sys.stderr)
        return 1
    from ptft.core import storage

    storage.atomic_write_text(options.out, render(spec, options.out))
    print(f"wrote {options.out}; next: ptft plan {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
