"""`ptft tasks`: every task (built-in and declared) with its type, formats, modes, splits and rows;
`ptft tasks show NAME` prints one rendered example exactly as the model sees it.

    ptft tasks                                           # the built-in tasks (rows: their mini data)
    ptft tasks --file configs/tasks/rte_declared.yaml    # ... and the tasks a file declares
    ptft tasks --spec configs/my_study.yaml              # ... and those of a spec's tasks: section
    ptft tasks show rte --format instruct --shots 2      # a 2-shot eval context and its candidates
    ptft tasks show xsum --split train --source mini     # a training example's segments (loss or not)
    ptft tasks show rte_declared --file configs/tasks/rte_declared.yaml --source hub

Texts are printed verbatim after a gutter (│ starts each line) with ⟧ right after the last character, so
leading and trailing whitespace and newlines are visible; candidates and targets are shown as Python
literals. Declaring tasks: docs/tasks.md. Exit status: 0 ok, 1 the data cannot be read, 2 bad arguments.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ptft.cli.flags import CommandLine

_SHOW_HELP = "ptft tasks show NAME --format F [--mode M] [--shots K] [--split train|eval] [--source S]"

EXAMPLES = """examples:
  ptft tasks                                         # every built-in task, with its mini rows
  ptft tasks --file configs/tasks/rte_declared.yaml  # ... and the tasks a file declares
  ptft tasks show rte --format instruct --shots 2    # a rendered 2-shot eval example
"""


class TasksOptions(BaseModel):
    """What `ptft tasks` takes: where declared tasks come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str | None = Field(None, description="Experiment spec (YAML) whose tasks: section declares tasks.")
    file: list[str] = Field(default_factory=list, description="Task files (YAML) declaring tasks.")
    json_output: bool = Field(False, description="Print the table as JSON (with the hub split sizes).")


class ShowOptions(TasksOptions):
    """What `ptft tasks show NAME` takes: which rendering of which example."""

    format: Literal["default", "instruct", "io"] = Field("default", description="Prompt format.")
    mode: Literal["fixed", "faithful"] = Field("fixed", description="fixed, or the study's faithful "
                                                                    "strings (built-in tasks only).")
    shots: int = Field(0, ge=0, description="k shots before the item (eval split only).")
    split: Literal["train", "eval"] | None = Field(None, description="Which view: the eval split (null: "
                                                                     "eval when the task has one).")
    source: str | None = Field(None, description="mini | hub | a folder of <task>/<split>.jsonl (null: "
                                                 "mini for built-ins, a declared task's own data).")
    index: int = Field(0, ge=0, description="Which example, 0-based, in the set's order.")
    seed: int = Field(1234, description="Seed of the fixed-mode few-shot draw (EvalConfig.fewshot_seed).")


def list_command() -> CommandLine:
    return CommandLine("ptft tasks", TasksOptions, description=__doc__, epilog=EXAMPLES,
                       rename={"json_output": "--json"})


def command_line() -> CommandLine:
    """The `ptft tasks` listing's command line (`ptft tasks show` has its own: `show_command`)."""
    return list_command()


def show_command() -> CommandLine:
    cli = CommandLine("ptft tasks show", ShowOptions, description=__doc__, rename={"json_output": "--json"},
                      exclude=("json_output",))
    cli.parser.add_argument("name", metavar="NAME", help="task name (built-in or declared)")
    return cli


# --- declared tasks -------------------------------------------------------------------------------


def register_from(options: TasksOptions) -> list[str]:
    """Register the tasks `--spec` and `--file` declare; their names, in order."""
    from ptft import tasks
    from ptft.core.yaml_files import read_yaml

    declarations = []
    if options.spec:
        try:
            raw = read_yaml(options.spec)
        except FileNotFoundError:
            raise ValueError(f"--spec {options.spec}: file not found") from None
        value = raw.get("tasks") if isinstance(raw, dict) else None
        declarations += tasks.declarations_from_spec_value(value, os.path.dirname(os.path.abspath(options.spec)),
                                                           path=options.spec)
    for path in options.file:
        declarations += tasks.load_task_file(path)
    return [tasks.register_declared(d).name for d in declarations]


# --- the table ------------------------------------------------------------------------------------


def _rows(spec: Any, split: str) -> str:
    """Rows of a split without downloading: mini data for built-ins, a declared folder's file, else 'hub'."""
    from ptft.tasks.loading import count_rows

    if spec.declaration_digest and spec.data_dir is None:
        return "hub"
    counted = count_rows(spec, split, "mini")
    return "?" if counted is None else str(counted)


def describe(spec: Any) -> dict[str, Any]:
    """One task's row: type, formats, modes, its splits with their rows, where it comes from."""
    modes = ["fixed"]
    if spec.faithful_formats:
        same = spec.faithful_formats == spec.formats
        modes.append("faithful" if same else f"faithful({','.join(spec.faithful_formats)})")
    roles: dict[str, str] = {}
    if spec.train_split:
        roles["train"] = spec.train_split
    if "fixed" in spec.eval_split:
        roles["eval"] = spec.eval_split["fixed"]
        roles["shots"] = spec.fewshot_split or spec.eval_split["fixed"]
        if spec.fewshot_task:
            roles["shots"] = f"{spec.fewshot_task}/{roles['shots']}"
    if spec.eval_split.get("faithful", roles.get("eval")) != roles.get("eval"):
        roles["faithful-eval"] = spec.eval_split["faithful"]
    from ptft.tasks import declared_tasks, get_task

    splits = {}
    for role, split in roles.items():
        pool, _, name = split.rpartition("/")  # "mnli/train": another task's split supplies the shots
        splits[role] = {"split": split, "rows": _rows(get_task(pool) if pool else spec, name)}
    declared = declared_tasks().get(spec.name)
    return {"name": spec.name, "type": spec.task_type, "formats": list(spec.formats), "modes": modes,
            "metric": spec.metric, "splits": splits, "hub_sizes": dict(spec.split_sizes),
            "from": (declared.declared_in or "(code)") if declared is not None else "built-in"}


def _table(described: list[dict[str, Any]]) -> str:
    header = ("NAME", "TYPE", "FORMATS", "MODES", "METRIC", "SPLITS (role=split:rows)", "FROM")
    lines = [header]
    for d in described:
        splits = " ".join(f"{role}={s['split']}:{s['rows']}" for role, s in d["splits"].items())
        lines.append((d["name"], d["type"], ",".join(d["formats"]), " ".join(d["modes"]), d["metric"], splits,
                      d["from"]))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
                     for row in lines)


def list_main(argv: Sequence[str]) -> int:
    from ptft import tasks

    options, _ = list_command().parse(argv)
    try:
        register_from(options)
    except ValueError as err:  # TaskDeclarationError, DeclarationConflict, YAML errors: one line each
        return _fail(err)
    described = [describe(tasks.get_task(name)) for name in tasks.list_tasks()]
    if options.json_output:
        print(json.dumps(described, indent=2))
        return 0
    print(_table(described))
    print("\nrows: built-in tasks count their mini data (`--source hub` in `ptft tasks show` reads the real "
          "split), declared tasks their folder; 'hub': a declared hub dataset, not downloaded here.")
    print(f"one example as the model sees it: {_SHOW_HELP}")
    return 0


# --- one example ----------------------------------------------------------------------------------


def shown(text: str, indent: str = "  ") -> str:
    """`text` verbatim, each line after a │ gutter and ⟧ right after its last character."""
    return "\n".join(f"{indent}│{line}" for line in text.split("\n")) + "⟧"


def _default_source(spec: Any) -> str:
    if spec.data_dir is not None:
        return spec.data_dir  # a declared folder is read whatever the source says
    return "hub" if spec.declaration_digest else "mini"


def show_example(options: ShowOptions, name: str) -> str:
    """The rendered example `options` asks for, as text (what `ptft tasks show` prints)."""
    from ptft import tasks

    spec = tasks.get_task(name)
    source = options.source or _default_source(spec)
    split = options.split or ("eval" if spec.eval_split else "train")
    version = tasks.template_version(name, options.format, options.mode)
    head = f"{name} · {spec.task_type} · {options.mode} · {options.format}"
    if split == "train":
        if options.shots:
            raise ValueError("--shots: shots are for the eval split; a training example has none")
        rendered = tasks.training_set(name, options.format, options.mode, source=source, limit=options.index + 1)
        if options.index >= len(rendered.examples):
            raise ValueError(f"--index {options.index}: the training set has {len(rendered.examples)} examples")
        example = rendered.examples[options.index]
        out = [f"{head} · train split {spec.train_split!r} (source {source}) · example {options.index} "
               f"({example.example_id}) of {rendered.counts['subset']}",
               f"template_version {version}",
               "", "what training sees: segments in order, loss only where marked"]
        for i, segment in enumerate(example.segments, start=1):
            loss = "loss" + (", then eos" if segment.eos else "") if segment.train else "no loss"
            out += [f"segment {i} ({loss}):", shown(segment.text)]
        out += ["", f"completion: {example.completion!r}"]
        return "\n".join(out)
    evals = tasks.eval_set(name, options.format, options.mode, options.shots, source=source,
                           limit=options.index + 1, seed=options.seed)
    if options.index >= len(evals.examples):
        raise ValueError(f"--index {options.index}: the eval set has {len(evals.examples)} examples")
    example = evals.examples[options.index]
    out = [f"{head} · eval split {evals.split!r} (source {source}) · {options.shots}-shot · example "
           f"{options.index} ({example.example_id}) of {evals.counts['rows'] - evals.counts['shot_rows_excluded']}",
           f"template_version {version}",
           "", f"context ({len(example.context)} characters, {example.shots_used} "
           f"shot{'' if example.shots_used == 1 else 's'}):", shown(example.context)]
    if options.mode == "fixed" and example.context.endswith((" ", "\n", "\t")):
        # evals/scoring.py splits there, as training did (tasks.token_boundary)
        moved = "onto each candidate" if example.candidates else "off the context: the model generates it"
        out.append(f"  (the scorer moves the final {example.context[-1]!r} {moved}; tasks.token_boundary)")
    if example.candidates:
        scored = ("each scored as the continuation of the context" if options.mode == "fixed" else
                  "the label words; faithful scoring reads the next-token verbalizers below")
        out += ["", f"candidates ({scored}):"]
        out += [f"  [{i}] {c!r}" + ("  <- gold" if i == example.gold_index else "")
                for i, c in enumerate(example.candidates)]
    out += ["", f"target: {example.target!r}"]
    if evals.stop_sequences:
        out.append(f"stop sequences: {list(evals.stop_sequences)!r}")
    if options.mode == "faithful" and evals.faithful_verbalizers:
        out.append(f"faithful verbalizers: {list(evals.faithful_verbalizers)!r}")
    return "\n".join(out)


def show_main(argv: Sequence[str]) -> int:
    from ptft.tasks import DataError

    options, args = show_command().parse(argv)
    try:
        register_from(options)
        text = show_example(options, args.name)
    except DataError as err:
        return _fail(err, status=1)
    except OSError as err:  # datasets: the hub unreachable (offline), a dataset not there
        return _fail(f"{args.name}: the data could not be loaded: {err}; a local source reads rows instead "
                     "(--source mini for a built-in task, or a folder of <task>/<split>.jsonl)", status=1)
    except (KeyError, ValueError) as err:  # an unknown task (UnknownTaskError is both), a bad declaration
        return _fail(err)
    print(text)  # outside the try: a closed pipe (`| head`) is not a data error
    return 0


def _fail(err: Exception | str, status: int = 2) -> int:
    for line in str(err).splitlines():
        print(f"ptft tasks: error: {line}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "show":
        return show_main(argv[1:])
    return list_main(argv)


if __name__ == "__main__":
    sys.exit(main())
