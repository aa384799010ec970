"""`ptft analyze`: a results table (a ptft grid's storage, or the study's published CSVs) -> report folder.

Transfer, forgetting and format-sensitivity matrices, curves and group averages; CSVs, PNGs and
report.html in one folder, optionally a W&B summary run. Exit status: 0 ok, 1 bad input (nothing to
analyze, duplicated records, a missing file), 2 bad arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ptft.cli.flags import CommandLine

EXAMPLES = """examples:
  ptft analyze --storage runs/smoke --out runs/smoke/analysis
  ptft analyze --study-csv all_perf_table.csv --study-official-csv official_eval_table.csv --out study/
  ptft analyze --storage runs/smoke --out /tmp/a --wandb-project ptft-smoke --wandb-mode offline
  ptft analyze --config analyze.yaml --set wandb.project=P
"""


def command_line() -> CommandLine:
    from evals.analysis.pipeline import AnalyzeConfig

    return CommandLine("ptft analyze", AnalyzeConfig, description=__doc__, epilog=EXAMPLES)


def main(argv: Sequence[str] | None = None) -> int:
    from evals.analysis.pipeline import run_analysis
    from ptft.core.wandb_settings import WandbModeError

    config, _ = command_line().parse(argv)
    try:
        outcome = run_analysis(config)
    except WandbModeError as error:
        print(f"ptft analyze: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as error:  # AnalysisInputError, DuplicateRecordError, a bad CSV
        print(f"ptft analyze: {error}", file=sys.stderr)
        return 1
    for note in outcome.notes:
        print(note)
    counts = outcome.counts
    print(f"{counts['records']} records; transfer cells {counts['transfer_cells']} "
          f"(ok {counts['transfer_ok']}, missing fine-tuned {counts['transfer_missing_finetuned']}, "
          f"missing base {counts['transfer_missing_base']}, missing both {counts['transfer_missing_both']})")
    print(f"wrote {len(outcome.written)} files; report: {outcome.report}")
    if outcome.wandb_run_dir:
        print(f"W&B run: {outcome.wandb_run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
