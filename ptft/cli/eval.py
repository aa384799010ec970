"""`ptft eval`: score one model on datasets x formats x shots, writing records and predictions.

Its options: what to score (below), how to score it (`evals.config.EvalConfig`'s fields) and the
identity copied into every record (`evals.results.ModelIdentity`'s fields; base_model and checkpoint
default to the model itself), each declared once, on its own type. Exit status: 0 ok, 1 the model
failed to load, 2 bad arguments.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from collections.abc import Sequence

from pydantic import ConfigDict, Field

from evals.config import EvalConfig
from evals.results import ModelIdentity
from ptft.cli.flags import CommandLine, model_from_dataclass

EXAMPLES = """examples:
  ptft eval --model allenai/OLMo-1B-hf --revision step1000-tokens4B \\
      --tasks mnli_matched,xsum --formats default,instruct --shots 4 --mode fixed --out runs/eval
  ptft eval --model runs/demo/pretrain/step600 --tasks rte --data-source mini --limit 20 --out /tmp/rte
  ptft eval --config eval.yaml --set batch_size=8          # the same fields as a YAML mapping
"""

# Help for the identity fields (ModelIdentity is a plain dataclass; a field's metadata["description"]
# wins when it has one). Types and defaults are read from ModelIdentity itself.
_IDENTITY_HELP = {
    "model_kind": "Recorded model kind.",
    "base_model": "Pre-trained model family recorded; null: the --model path or hub id.",
    "checkpoint": "Checkpoint label recorded; null: the revision, else the directory's name, else main.",
    "checkpoint_step": "Pre-training step recorded (for curves).",
    "train_dataset": "Fine-tuning dataset recorded (fine-tuned models only).",
    "train_format": "Fine-tuning format recorded.",
    "lr": "Fine-tuning learning rate recorded.",
    "trial_id": "Trial id recorded.",
    "epochs": "Fine-tuning epochs recorded.",
    "method": "Fine-tuning method label recorded (full, lora-r16, prompt-20; full for base models).",
    "objective": "What the model's last training stage optimised, recorded (sft, continual_pt, dpo).",
    "prior_stages": "Recipes: the stages before the last, recorded (e.g. continual_pt:news>sft:mnli/default).",
}
IdentityOptions = model_from_dataclass(ModelIdentity, name="IdentityOptions", optional=("base_model", "checkpoint"),
                                       descriptions=_IDENTITY_HELP)
IDENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(ModelIdentity) if f.init)


class EvalCommand(EvalConfig, IdentityOptions):  # type: ignore[misc, valid-type]
    """Everything `ptft eval` takes: the command's own fields, EvalConfig's, the model identity's."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str = Field(..., description="Hub id or local model directory (local, s3:// or gs://).")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    tasks: list[str] = Field(..., min_length=1, description="Eval dataset names.")
    formats: list[str] = Field(default_factory=lambda: ["default"], min_length=1,
                               description="Formats: default, instruct, io.")
    shots: list[int] = Field(default_factory=lambda: [4], min_length=1, description="Shot counts.")
    out: str = Field(..., description="Output directory (local, s3:// or gs://).")
    data_source: str = Field("hub", description="hub | mini | a folder of <task>/<split>.jsonl.")
    progress: bool = Field(True, description="Progress bars (only where stderr is a terminal).")

    def eval_config(self) -> EvalConfig:
        return EvalConfig.model_validate(self.model_dump(include=set(EvalConfig.model_fields)))

    def model_ref(self):
        from evals.jobs import ModelRef

        identity = {name: getattr(self, name) for name in IDENTITY_FIELDS}
        return ModelRef.of(self.model, self.revision, **identity)

    def jobs(self):
        from evals.jobs import EvalJob

        return [EvalJob(dataset, fmt, shots) for dataset, fmt, shots
                in itertools.product(self.tasks, self.formats, self.shots)]


_OWN = set(EvalCommand.__annotations__) - {"model_config"}
_CLASH = (_OWN & set(EvalConfig.model_fields)) | (_OWN & set(IDENTITY_FIELDS)) | (
    set(EvalConfig.model_fields) & set(IDENTITY_FIELDS))
if _CLASH:  # one flag, one meaning: a field name shared by two of the types would silently merge them
    raise TypeError(f"ptft eval: fields {sorted(_CLASH)} are declared twice (command, EvalConfig, ModelIdentity)")


def command_line() -> CommandLine:
    return CommandLine("ptft eval", EvalCommand, description=__doc__, epilog=EXAMPLES, groups={
        "scoring (evals.config.EvalConfig)": list(EvalConfig.model_fields),
        "model identity, copied into every record (evals.results.ModelIdentity)": list(IDENTITY_FIELDS)})


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ptft eval`; returns the exit status (0 ok, 1 model failed to load, 2 bad arguments)."""
    from evals.model_loading import ModelLoadError
    from evals.runner import evaluate_model, validate_jobs

    command, _ = command_line().parse(argv)
    try:
        config = command.eval_config()
        model = command.model_ref()
        jobs = command.jobs()
        validate_jobs(jobs, config.mode, command.data_source)
    except (KeyError, ValueError) as exc:  # UnknownTaskError is both; its str() has "did you mean"
        print(f"ptft eval: error: {exc}", file=sys.stderr)
        return 2
    try:
        records = evaluate_model(model, jobs, config, command.out, data_source=command.data_source,
                                 progress=command.progress and sys.stderr.isatty())  # no \\r-bars in a log
    except ModelLoadError as exc:
        print(f"ptft eval: error: {exc}", file=sys.stderr)
        return 1
    width = max(len(r.job_id or "") for r in records)
    for record in records:
        std = f" ± {record.std:.4f}" if record.std is not None else ""
        print(f"{record.job_id:<{width}}  {record.metric:>8} {record.value:.4f}{std}  n={record.n}")
    print(f"wrote {len(records)} records to {command.out}/results.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
