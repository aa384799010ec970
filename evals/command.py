"""`ptft eval`: score one model on datasets x formats x shots, writing records and predictions.

    ptft eval --model allenai/OLMo-1B-hf --revision step1000-tokens4B \\
        --tasks mnli_matched,xsum --formats default,instruct --shots 4 --mode fixed --out runs/eval
"""

from __future__ import annotations

import argparse
import itertools
import sys

from evals.config import EvalConfig
from evals.jobs import EvalJob, ModelRef
from evals.model_loading import ModelLoadError


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _shots(text: str) -> list[int]:
    try:
        return [int(part) for part in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shots takes comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The `ptft eval` argument parser."""
    parser = argparse.ArgumentParser(prog="ptft eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="hub id or local model directory")
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    parser.add_argument("--tasks", required=True, type=_csv, help="comma-separated dataset names")
    parser.add_argument("--formats", default=["default"], type=_csv, help="comma-separated: default,instruct,io")
    parser.add_argument("--shots", default=[4], type=_shots, help="comma-separated shot counts (default 4)")
    parser.add_argument("--mode", default="fixed", choices=("fixed", "faithful"))
    parser.add_argument("--out", required=True, help="output directory (local, s3:// or gs://)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N examples per job")
    parser.add_argument("--data-source", default="hub", help="hub | mini | a folder of <task>/<split>.jsonl")
    parser.add_argument("--max-new-tokens", type=int, default=60)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available)")
    parser.add_argument("--bootstrap-seed", type=int, default=1234)
    parser.add_argument("--bootstrap-resamples", type=int, default=3000)
    identity = parser.add_argument_group("model identity (copied into every record)")
    identity.add_argument("--model-kind", default="base", choices=("base", "finetuned"))
    identity.add_argument("--base-model", default=None)
    identity.add_argument("--checkpoint", default=None)
    identity.add_argument("--checkpoint-step", type=int, default=None)
    identity.add_argument("--train-dataset", default=None)
    identity.add_argument("--train-format", default=None)
    identity.add_argument("--lr", type=float, default=None)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def eval_main(argv: list[str] | None = None) -> int:
    """Run `ptft eval`; returns the exit status (0 ok, 1 model failed to load, 2 bad arguments)."""
    from pydantic import ValidationError

    from evals.runner import evaluate_model, validate_jobs

    args = build_parser().parse_args(argv)
    try:
        config = EvalConfig(mode=args.mode, batch_size=args.batch_size, limit=args.limit,
                            max_new_tokens=args.max_new_tokens, max_length=args.max_length,
                            precision=args.precision, device=args.device,
                            bootstrap_seed=args.bootstrap_seed, bootstrap_resamples=args.bootstrap_resamples)
        model = ModelRef(path_or_id=args.model, revision=args.revision, model_kind=args.model_kind,
                         base_model=args.base_model, checkpoint=args.checkpoint,
                         checkpoint_step=args.checkpoint_step, train_dataset=args.train_dataset,
                         train_format=args.train_format, lr=args.lr)
        jobs = [EvalJob(dataset, fmt, shots) for dataset, fmt, shots
                in itertools.product(args.tasks, args.formats, args.shots)]
        validate_jobs(jobs, config.mode)
    except ValidationError as exc:
        print(f"ptft eval: error: {exc}", file=sys.stderr)
        return 2
    except (KeyError, ValueError) as exc:  # UnknownTaskError is both; its str() has "did you mean"
        print(f"ptft eval: error: {exc}", file=sys.stderr)
        return 2
    try:
        records = evaluate_model(model, jobs, config, args.out, data_source=args.data_source,
                                 progress=not args.no_progress)
    except ModelLoadError as exc:
        print(f"ptft eval: error: {exc}", file=sys.stderr)
        return 1
    width = max(len(r.job_id or "") for r in records)
    for record in records:
        std = f" ± {record.std:.4f}" if record.std is not None else ""
        print(f"{record.job_id:<{width}}  {record.metric:>8} {record.value:.4f}{std}  n={record.n}")
    print(f"wrote {len(records)} records to {args.out}/results.jsonl")
    return 0


if __name__ == "__main__":
    raise SystemExit(eval_main())
