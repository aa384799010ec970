"""`ptft analyze`: a results table (a ptft grid's storage, or the study's published CSVs) -> report folder.

    ptft analyze --storage PATH --out DIR
    ptft analyze --study-csv all_perf_table.csv [--study-official-csv official_eval_table.csv] --out DIR
    ... [--wandb-project P [--wandb-mode offline]]
"""

from __future__ import annotations

import argparse
import sys

from evals.analysis.core import CHANCE_MARGIN, analyze, write_outputs
from evals.analysis.frame import MAIN_STEP, DuplicateRecordError, read_grid_records
from evals.analysis.study_import import import_study_table
from evals.results import ResultRecord
from ptft.core import storage


def build_parser() -> argparse.ArgumentParser:
    """The `analyze` argument parser (the lead mounts it as a `ptft` subcommand)."""
    parser = argparse.ArgumentParser(
        prog="ptft analyze",
        description="Transfer, forgetting and format-sensitivity matrices, curves and group averages "
                    "from a results table; CSVs, PNGs and report.html in one folder, optionally W&B.")
    source = parser.add_argument_group("inputs (at least one; several are analysed together, never merged)")
    source.add_argument("--storage", help="a ptft grid's storage path: reads every evals/*/results.jsonl")
    source.add_argument("--study-csv", help="the study's main table (all_perf_table.csv schema)")
    source.add_argument("--study-official-csv", help="the study's official MC table (official_eval_table.csv schema)")
    parser.add_argument("--out", required=True, help="output folder (local, s3:// or gs://)")
    parser.add_argument("--main-step", type=int, default=MAIN_STEP,
                        help="x position of the final model, whose step is unknown (default %(default)s)")
    parser.add_argument("--chance-margin", type=float, default=CHANCE_MARGIN,
                        help="flag forgetting where the base is at most chance + this (default %(default)s)")
    parser.add_argument("--title", default=None, help="report title")
    wandb = parser.add_argument_group("W&B (only with --wandb-project)")
    wandb.add_argument("--wandb-project", help="log a summary run to this W&B project")
    wandb.add_argument("--wandb-entity")
    wandb.add_argument("--wandb-mode", default="auto", choices=["auto", "offline", "online", "disabled"],
                       help="auto: online only if WANDB_API_KEY is set (default %(default)s)")
    wandb.add_argument("--wandb-dir", help="where the run's files go (default: the --out folder when local)")
    wandb.add_argument("--wandb-run-id")
    wandb.add_argument("--wandb-group")
    return parser


def _load(args: argparse.Namespace) -> tuple[list[ResultRecord], list[str]]:
    records: list[ResultRecord] = []
    notes: list[str] = []
    if args.storage:
        grid_records, files = read_grid_records(args.storage)
        records += grid_records
        notes.append(f"{args.storage}: {len(files)} results.jsonl files -> {len(grid_records)} records")
    for path, official in ((args.study_csv, False), (args.study_official_csv, True)):
        if path:
            report = import_study_table(path, official=official)
            records += report.records
            notes += report.notes()
    return records, notes


def analyze_main(argv: list[str] | None = None) -> int:
    """Run `ptft analyze`; returns the exit status (0 ok, 1 bad input, 2 bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help and on errors; callers want a status
        return int(exit_.code or 0)
    if not (args.storage or args.study_csv or args.study_official_csv):
        parser.print_usage(sys.stderr)
        print("ptft analyze: give --storage and/or --study-csv / --study-official-csv", file=sys.stderr)
        return 2
    try:
        records, notes = _load(args)
        if not records:
            raise ValueError("no result records found: " + "; ".join(notes))
        title = args.title or ("study tables" if not args.storage else f"ptft grid {args.storage}")
        analysis = analyze(records, main_step=args.main_step, chance_margin=args.chance_margin,
                           notes=notes, title=title)
    except (DuplicateRecordError, ValueError, FileNotFoundError) as error:
        print(f"ptft analyze: {error}", file=sys.stderr)
        return 1
    for note in notes:
        print(note)
    from evals.analysis import plots

    figures = plots.all_figures(analysis)
    written = write_outputs(analysis, args.out, figures)
    counts = analysis.counts
    print(f"{counts['records']} records; transfer cells {counts['transfer_cells']} "
          f"(ok {counts['transfer_ok']}, missing fine-tuned {counts['transfer_missing_finetuned']}, "
          f"missing base {counts['transfer_missing_base']}, missing both {counts['transfer_missing_both']})")
    print(f"wrote {len(written)} files; report: {written['report.html']}")
    if args.wandb_project:
        from evals.analysis.wandb_log import log_to_wandb

        wandb_dir = args.wandb_dir or (None if storage.is_remote(args.out) else args.out)
        run_dir = log_to_wandb(analysis, args.wandb_project, entity=args.wandb_entity, mode=args.wandb_mode,
                               dir=wandb_dir, run_id=args.wandb_run_id, group=args.wandb_group, figures=figures)
        print(f"W&B run: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(analyze_main())
