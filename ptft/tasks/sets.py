"""Rendered training sets and k-shot eval sets, each with a checksum and counts of everything dropped."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from ptft.core.ids import canonical_json, sha256_text
from ptft.tasks.errors import DataError, check_choice
from ptft.tasks.fewshot import TokenCounter, assemble, eval_kind, query_text, shot_text
from ptft.tasks.formats.render import RowContext, render_row
from ptft.tasks.formats.templates import FAITHFUL_VERBALIZERS, task_stop_sequences, template_version
from ptft.tasks.loading import (
    count_rows,
    is_local,
    load_split,
    local_rows,
    shuffled_order,
    split_path,
    subset_indices,
)
from ptft.tasks.registry import REGISTRY, get_task, require_format
from ptft.tasks.types import EvalExample, EvalSet, Rendered, RenderedSet, TaskSpec

ON_ERROR = ("raise", "skip")


def _render(spec: TaskSpec, dataset: Any, indices: Iterable[int], split: str, fmt: str, mode: str,
            on_error: str, counts: dict[str, int], source: str = "hub") -> Iterable[tuple[int, Rendered]]:
    """Render rows lazily; a bad row raises DataError, or with on_error="skip" is counted and passed.

    From a local file the error names the file, the row's line and the value as written (`_as_written`).
    """
    for i in indices:
        try:
            yield i, render_row(spec, dataset[i], fmt, mode, RowContext(spec, split, i), _row_id(spec, split, i))
        except DataError as err:
            located, row_is_bad = _as_written(err, spec, split, fmt, mode, source, i)
            if on_error == "raise" or not row_is_bad:  # a file-wide problem is never skipped row by row
                raise located from None
            counts["skipped_bad_rows"] = counts.get("skipped_bad_rows", 0) + 1


def _render_written(spec: TaskSpec, row: dict[str, Any], split: str, fmt: str, mode: str, line: int,
                    path: str) -> DataError | None:
    try:
        render_row(spec, row, fmt, mode, RowContext(spec, split, line), f"{spec.name}/{split}/line{line}")
    except DataError as err:
        return err.at(path, line, f"correct or remove line {line} of {path}")
    return None


def _as_written(err: DataError, spec: TaskSpec, split: str, fmt: str, mode: str, source: str,
                i: int) -> tuple[DataError, bool]:
    """(the error to report, whether row `i` itself is bad) for a row that failed to render.

    The JSON reader infers one type per column, so a single `1.5` among integer labels turns row `i`'s
    label 0 into 0.0. The row is re-rendered as the file has it: if it fails, that is the error, at its
    line; if it renders, the first line of the file that fails is the cause.
    """
    written = local_rows(spec, split, source)
    if written is None or len(written.rows) <= i:
        return err, True
    line = written.lines[i]
    own = _render_written(spec, written.rows[i], split, fmt, mode, line, written.path)
    if own is not None:
        return own, True
    for row, other_line in zip(written.rows, written.lines, strict=True):
        cause = _render_written(spec, row, split, fmt, mode, other_line, written.path)
        if cause is not None:
            return cause, False
    return err.at(written.path, line, f"the JSON reader changed line {line}'s value: give column "
                  f"{err.field!r} one type in every row of {written.path}"), False


def _checksum(records: list[Any]) -> str:
    return sha256_text(canonical_json(records))


def training_set(task: str, fmt: str, mode: str = "fixed", source: str = "hub", limit: int | None = None,
                 on_error: str = "raise") -> RenderedSet:
    """The study's training subset (shuffle seed 42, first 6,000 rows; tulu 5%) rendered in `fmt`.

    `limit` keeps the first N rows of the subset (smoke runs). counts: rows (in the split), subset,
    subset_short (rows the split lacked to fill the rule's size), skipped_bad_rows, rendered.
    """
    spec = get_task(task)
    require_format(spec, fmt, mode)
    check_choice("on_error", on_error, ON_ERROR)
    dataset, indices = _training_subset(spec, source)
    counts = {"rows": len(dataset), "subset": len(indices), "skipped_bad_rows": 0,
              "subset_short": max(0, (spec.train_subset_size or 0) - len(indices))}
    if limit is not None:
        indices = indices[:limit]
    examples = tuple(r for _, r in _render(spec, dataset, indices, spec.train_split, fmt, mode, on_error,
                                            counts, source))
    counts["rendered"] = len(examples)
    checksum = _checksum([[r.example_id, [[s.text, s.train, s.eos] for s in r.segments]] for r in examples])
    return RenderedSet(spec, fmt, mode, examples, checksum, counts)


def _training_subset(spec: TaskSpec, source: str) -> tuple[Any, list[int]]:
    if spec.train_split is None:
        raise ValueError(f"{spec.name} has no training split; it is an evaluation-only dataset")
    dataset = load_split(spec, spec.train_split, source)
    return dataset, subset_indices(spec, len(dataset))


def training_rows(task: str, source: str = "hub", limit: int | None = None) -> dict[str, dict[str, Any]]:
    """The raw rows of `training_set`'s examples, by example id (what a rendered example came from:
    rejection sampling keeps a chat row's turns)."""
    spec = get_task(task)
    dataset, indices = _training_subset(spec, source)
    return {_row_id(spec, spec.train_split, i): dataset[i] for i in indices[:limit]}


def _row_id(spec: TaskSpec, split: str, i: int) -> str:
    return f"{spec.name}/{split}/{i}"


def _draw_shots(pool_spec: TaskSpec, pool: Any, split: str, k: int, seed: int, fmt: str, mode: str,
                on_error: str, counts: dict[str, int], source: str = "hub") -> list[tuple[int, Rendered]]:
    """k rows drawn with `seed`; the draw order does not depend on k, so 2-shot shots start 4-shot ones."""
    rng = random.Random(seed)
    seen: set[int] = set()
    picked: list[tuple[int, Rendered]] = []
    skipped: dict[str, int] = {}
    while len(picked) < k and len(seen) < len(pool):
        i = rng.randrange(len(pool))
        if i in seen:
            continue
        seen.add(i)
        picked.extend(_render(pool_spec, pool, [i], split, fmt, mode, on_error, skipped, source))
    counts["skipped_bad_shot_rows"] = skipped.get("skipped_bad_rows", 0)
    if len(picked) < k:
        raise _too_few_shots(pool_spec, split, len(picked), k, source, "usable rows")
    return picked


def shot_pool(task: str | TaskSpec, mode: str) -> tuple[TaskSpec, str]:
    """(dataset, split) the shots of `task`'s eval set in `mode` come from.

    faithful: the eval split itself (its first k items), except multiple choice; fixed: the task's
    few-shot split (mnli_matched: mnli's train split).
    """
    spec = get_task(task) if isinstance(task, str) else task
    if not spec.eval_split:
        raise ValueError(f"{spec.name} is a training-only dataset")
    split = spec.eval_split[mode]
    if mode == "faithful" and spec.task_type != "multiple_choice":
        return spec, split
    return get_task(spec.fewshot_task or spec.name), spec.fewshot_split or split


def _too_few_shots(pool: TaskSpec, split: str, have: int, shots: int, source: str, what: str = "rows",
                   name: str = "shots") -> DataError:
    path = split_path(pool, split, source) if is_local(pool, source) else None
    return DataError(pool.name, split, None, None,
                     f"{name} = {shots}, but the few-shot pool has only {have} {what} (source={source!r})",
                     path, f"lower {name} to at most {have}")


def check_shots(task: str, mode: str, shots: int, source: str = "hub", name: str = "shots") -> None:
    """DataError when the few-shot pool of `task` in `mode` has fewer than `shots` rows.

    Counts a local file's rows (cheap: no rendering) or, for the hub, the registry's split size; an
    unknown size or a missing file passes (loading says why). `name` is how the caller's input names
    the shot count (`eval.shots[0]`), for the message.
    """
    if shots <= 0:
        return
    pool, split = shot_pool(task, mode)
    have = count_rows(pool, split, source)
    if have is not None and have < shots:
        raise _too_few_shots(pool, split, have, shots, source, name=name)


def eval_set(task: str, fmt: str, mode: str, shots: int, source: str = "hub", limit: int | None = None,
             count_tokens: TokenCounter | None = None, max_tokens: int | None = None, seed: int = 1234,
             on_error: str = "raise") -> EvalSet:
    """The k-shot eval set of `task` in (fmt, mode).

    faithful: the study's split; the shots are the first k items of that file (LLMBar: after its
    seed-42 shuffle), shared by every item and scored as well; prefix = concat of prompt +
    completion + "\\n". fixed: a labelled split; shots drawn with `seed` from the task's few-shot
    split, never scored (rows drawn from the eval split itself are removed from it). Multiple
    choice uses fixed-style shots in both modes (catwalk drew them from the training split).

    With `count_tokens` and `max_tokens`, shots are dropped oldest-first until context (+ the
    longest candidate) fits; an item that does not fit even with 0 shots is kept whole and counted
    `over_budget`. `limit` scores only the first N items.
    """
    spec = get_task(task)
    require_format(spec, fmt, mode)
    check_choice("on_error", on_error, ON_ERROR)
    if shots < 0:
        raise ValueError(f"shots must be >= 0, got {shots}")
    if not spec.eval_split:
        also = [n for n in REGISTRY if n.startswith(f"{task}_")]
        hint = f"; evaluate on {', '.join(also)}" if also else ""
        raise ValueError(f"{task} is a training-only dataset{hint}")
    split = spec.eval_split[mode]
    dataset = load_split(spec, split, source)
    kind = eval_kind(spec.task_type, spec.family)
    counts: dict[str, int] = {"rows": len(dataset), "shots_requested": shots, "shot_rows_excluded": 0,
                              "skipped_bad_rows": 0}
    order = list(range(len(dataset)))
    if mode == "faithful" and spec.eval_shuffle_seed is not None:
        order = shuffled_order(len(dataset), spec.eval_shuffle_seed)

    demos: list[tuple[int, Rendered]] = []
    if shots == 0:
        pass  # nothing to draw: the shot source is not even loaded
    elif mode == "faithful" and spec.task_type != "multiple_choice":
        # the first k items of the eval file: the same shots for every item, and scored too
        for item in _render(spec, dataset, order, split, fmt, mode, on_error, counts, source):
            demos.append(item)
            if len(demos) == shots:
                break
        if len(demos) < shots:
            raise _too_few_shots(spec, split, len(demos), shots, source, "usable rows")
        counts["skipped_bad_rows"] = 0  # those rows are met (and counted) again when scoring
    else:
        pool_spec, pool_split = shot_pool(spec, mode)
        same = pool_spec.name == spec.name and pool_split == split
        pool = dataset if same else load_split(pool_spec, pool_split, source)
        demos = _draw_shots(pool_spec, pool, pool_split, shots, seed, fmt, mode, on_error, counts, source)
        if same:  # a shot is never scored
            used = {i for i, _ in demos}
            order = [i for i in order if i not in used]
            counts["shot_rows_excluded"] = len(used)
    shot_texts = [shot_text(r, kind, mode) for _, r in demos]

    if limit is not None:
        counts["limited_out"] = max(0, len(order) - limit)
        order = order[:limit]
    examples = []
    for _, item in _render(spec, dataset, order, split, fmt, mode, on_error, counts, source):
        reserve = max(item.candidates, key=len) if item.candidates else ""
        built = assemble(shot_texts, query_text(item, kind, mode), count_tokens, max_tokens, reserve)
        counts["over_budget"] = counts.get("over_budget", 0) + built.over_budget
        examples.append(EvalExample(item.example_id, built.context, item.completion, item.gold_index,
                                    item.candidates, built.shots_used, built.shots_dropped))
    counts["scored"] = len(examples)
    counts["shots_dropped"] = sum(e.shots_dropped for e in examples)
    counts["examples_with_dropped_shots"] = sum(e.shots_dropped > 0 for e in examples)
    counts.setdefault("over_budget", 0)
    checksum = _checksum([[e.example_id, e.context, e.target, list(e.candidates), e.gold_index]
                          for e in examples])
    return EvalSet(
        task=spec, fmt=fmt, mode=mode, shots=shots, examples=tuple(examples),
        stop_sequences=task_stop_sequences(spec, fmt, mode),
        faithful_verbalizers=FAITHFUL_VERBALIZERS.get(spec.family, ()),
        checksum=checksum, counts=counts, template_version=template_version(task, fmt, mode), split=split,
    )
