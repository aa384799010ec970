"""Rendered training sets and k-shot eval sets, each with a checksum and counts of everything dropped."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from ptft.core.ids import canonical_json, sha256_text
from ptft.tasks.errors import DataError, check_choice
from ptft.tasks.fewshot import TokenCounter, assemble, eval_kind, query_text, shot_text
from ptft.tasks.formats.render import RowContext, render_row
from ptft.tasks.formats.templates import FAITHFUL_VERBALIZERS, stop_sequences, template_version
from ptft.tasks.loading import load_split, shuffled_order, subset_indices
from ptft.tasks.registry import REGISTRY, get_task, require_format
from ptft.tasks.types import EvalExample, EvalSet, Rendered, RenderedSet, TaskSpec

ON_ERROR = ("raise", "skip")


def _render(spec: TaskSpec, dataset: Any, indices: Iterable[int], split: str, fmt: str, mode: str,
            on_error: str, counts: dict[str, int]) -> Iterable[tuple[int, Rendered]]:
    """Render rows lazily; a bad row raises DataError, or with on_error="skip" is counted and passed."""
    for i in indices:
        try:
            yield i, render_row(spec, dataset[i], fmt, mode, RowContext(spec, split, i),
                                f"{spec.name}/{split}/{i}")
        except DataError:
            if on_error == "raise":
                raise
            counts["skipped_bad_rows"] = counts.get("skipped_bad_rows", 0) + 1


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
    if spec.train_split is None:
        raise ValueError(f"{task} has no training split; it is an evaluation-only dataset")
    dataset = load_split(spec, spec.train_split, source)
    indices = subset_indices(spec, len(dataset))
    counts = {"rows": len(dataset), "subset": len(indices), "skipped_bad_rows": 0,
              "subset_short": max(0, (spec.train_subset_size or 0) - len(indices))}
    if limit is not None:
        indices = indices[:limit]
    examples = tuple(r for _, r in _render(spec, dataset, indices, spec.train_split, fmt, mode, on_error, counts))
    counts["rendered"] = len(examples)
    checksum = _checksum([[r.example_id, [[s.text, s.train, s.eos] for s in r.segments]] for r in examples])
    return RenderedSet(spec, fmt, mode, examples, checksum, counts)


def _draw_shots(pool_spec: TaskSpec, pool: Any, split: str, k: int, seed: int, fmt: str, mode: str,
                on_error: str, counts: dict[str, int]) -> list[tuple[int, Rendered]]:
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
        picked.extend(_render(pool_spec, pool, [i], split, fmt, mode, on_error, skipped))
    counts["skipped_bad_shot_rows"] = skipped.get("skipped_bad_rows", 0)
    if len(picked) < k:
        raise ValueError(f"{pool_spec.name}/{split} has only {len(picked)} usable rows for {k} shots")
    return picked


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
        for item in _render(spec, dataset, order, split, fmt, mode, on_error, counts):
            demos.append(item)
            if len(demos) == shots:
                break
        if len(demos) < shots:
            raise ValueError(f"{task}/{split} has only {len(demos)} usable rows for {shots} shots")
        counts["skipped_bad_rows"] = 0  # those rows are met (and counted) again when scoring
    else:
        pool_spec = get_task(spec.fewshot_task or spec.name)
        pool_split = spec.fewshot_split or split
        same = pool_spec.name == spec.name and pool_split == split
        pool = dataset if same else load_split(pool_spec, pool_split, source)
        demos = _draw_shots(pool_spec, pool, pool_split, shots, seed, fmt, mode, on_error, counts)
        if same:  # a shot is never scored
            used = {i for i, _ in demos}
            order = [i for i in order if i not in used]
            counts["shot_rows_excluded"] = len(used)
    shot_texts = [shot_text(r, kind, mode) for _, r in demos]

    if limit is not None:
        counts["limited_out"] = max(0, len(order) - limit)
        order = order[:limit]
    examples = []
    for _, item in _render(spec, dataset, order, split, fmt, mode, on_error, counts):
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
        stop_sequences=stop_sequences(spec.task_type, fmt, mode, spec.single_line_target),
        faithful_verbalizers=FAITHFUL_VERBALIZERS.get(spec.family, ()),
        checksum=checksum, counts=counts, template_version=template_version(task, fmt, mode), split=split,
    )
