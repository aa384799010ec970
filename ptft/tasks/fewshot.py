"""k-shot context assembly under a token budget.

Shots are dropped from the front (the oldest) until the context fits; the item itself is never cut.
If even zero shots do not fit, the example is kept whole and flagged over budget: the evaluator
decides what to do with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ptft.tasks.formats.render import join_space
from ptft.tasks.formats.templates import fewshot_rules
from ptft.tasks.types import Rendered

TokenCounter = Callable[[str], int]


def eval_kind(task_type: str, family: str) -> str:
    """The few-shot layout an eval set uses: LLMBar is scored through the chat wrapper."""
    return "chat" if family == "llmbar" else task_type


def shot_text(shot: Rendered, kind: str, mode: str) -> str:
    """One demonstration, including whatever separates it from the next."""
    pattern = fewshot_rules(kind, mode)["shot"]
    return pattern.format(prompt=shot.prompt, completion=shot.completion,
                          join=join_space(shot.prompt, shot.completion))


def query_text(item: Rendered, kind: str, mode: str) -> str:
    """The scored item as the model sees it after the shots."""
    rules = fewshot_rules(kind, mode)
    if "query" not in rules:
        return item.prompt
    # the study's chat wrapper strips the assistant content (eval/templates.py)
    return rules["query"].format(prompt=item.prompt, completion=item.completion.strip())


@dataclass(frozen=True)
class Assembled:
    context: str
    shots_used: int
    shots_dropped: int
    over_budget: bool


def assemble(shots: Sequence[str], query: str, count_tokens: TokenCounter | None = None,
             max_tokens: int | None = None, reserve: str = "") -> Assembled:
    """Shots + query; with a budget, drop the oldest shots until count_tokens(context + reserve) fits.

    `reserve` is text that must fit after the context (the longest candidate continuation).
    """
    if (count_tokens is None) != (max_tokens is None):
        raise ValueError("count_tokens and max_tokens go together")
    k = len(shots)
    if count_tokens is None or max_tokens is None:
        return Assembled("".join(shots) + query, k, 0, False)
    for dropped in range(k + 1):
        context = "".join(shots[dropped:]) + query
        if count_tokens(context + reserve) <= max_tokens:
            return Assembled(context, k - dropped, dropped, False)
    return Assembled(query, 0, k, True)
