"""The analysis layer: result records -> transfer, forgetting, format sensitivity, curves, group averages.

    from evals.analysis import analyze, write_outputs
    analysis = analyze(records)              # raises DuplicateRecordError on repeated keys
    write_outputs(analysis, "out/")          # CSVs, PNGs, report.html
    log_to_wandb(analysis, "my-project")     # offline unless WANDB_API_KEY is set

The study's published tables come in through `import_study_table`; a ptft grid through `read_grid_records`.

Modules, each importing only from those listed before it (no cycles):
    frame         records -> frame, duplicate check, checkpoint order, grid reading (bottom)
    taskinfo      the analysis's questions to the task registry (ptft.tasks)
    study_import  the study's published tables -> records
    provenance    code version, date, spec, plan, seeds, n per eval set, what the bands are
    tables        the `Analysis` value type (frame, provenance)
    matrices      transfer / forgetting / format-sensitivity / curve tables (frame, taskinfo)
    groups        group averages and slopes (frame, taskinfo)
    methods       in-domain gain against off-task forgetting per method and checkpoint (matrices, taskinfo)
    compute       `analyze` (frame, tables, matrices, groups, methods, provenance)
    formatting    numbers by kind: metric values, signed deltas, CIs, lrs, steps (matrices)
    figure_kit    style, PNG + PDF saving, the step axis, bands, the heatmap (formatting)
    plots         the figures of an `Analysis` (figure_kit, tables)
    html_tables   formatted, sortable, filterable HTML tables (formatting)
    findings      the report's findings, written from the tables (html_tables, tables)
    report        report.html (findings, html_tables, provenance, tables)
    outputs       `write_outputs` (tables, plots, report)
    wandb_log     `log_to_wandb` (tables, plots)
"""

from evals.analysis.compute import analyze
from evals.analysis.frame import MAIN_STEP, DuplicateRecordError, check_duplicates, read_grid_records
from evals.analysis.groups import GROUPS
from evals.analysis.outputs import write_outputs
from evals.analysis.study_import import ImportReport, import_study_table, parse_eval_name, parse_model_id
from evals.analysis.tables import CHANCE_MARGIN, Analysis
from evals.analysis.wandb_log import log_to_wandb

__all__ = [
    "CHANCE_MARGIN", "GROUPS", "MAIN_STEP", "Analysis", "DuplicateRecordError", "ImportReport", "analyze",
    "check_duplicates", "import_study_table", "log_to_wandb", "parse_eval_name", "parse_model_id",
    "read_grid_records", "write_outputs",
]
