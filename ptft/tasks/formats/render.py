"""Render one dataset row into a `Rendered` (prompt, completion, training segments, candidates)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ptft.tasks.errors import DataError
from ptft.tasks.formats.templates import CHAT, TEMPLATE_OPTIONS, template_string
from ptft.tasks.types import Rendered, Segment, TaskSpec

_WS = (" ", "\n", "\t")
_PATH = re.compile(r"^(?P<col>[^.\[]+)(?:\[(?P<idx>\d+)\]|\.(?P<key>\w+))?$")


def is_column_path(path: str) -> bool:
    """Whether `path` reads a column as the renderer can: "col", "col[0]" (an item) or "col.key"."""
    return _PATH.match(path) is not None


def column_root(path: str) -> str:
    """The hub column a column path reads ("Answer[0]" -> "Answer", "choices.text" -> "choices")."""
    match = _PATH.match(path)
    return match.group("col") if match else path


class RowContext:
    """Where a row came from, so every error names dataset, split, row and field."""

    def __init__(self, spec: TaskSpec, split: str, row: int) -> None:
        self.spec, self.split, self.row = spec, split, row

    def error(self, field: str | None, problem: str) -> DataError:
        return DataError(self.spec.name, self.split, self.row, field, problem)


def _extract(row: dict[str, Any], path: str, where: RowContext) -> Any:
    match = _PATH.match(path)
    if match is None:
        raise ValueError(f"bad column path {path!r}")
    col = match.group("col")
    if col not in row:
        raise where.error(col, "missing column")
    value = row[col]
    if match.group("idx") is not None:
        index = int(match.group("idx"))
        if not isinstance(value, (list, tuple)) or len(value) <= index:
            raise where.error(path, f"expected a list with an item {index}, got {value!r}")
        value = value[index]
    elif match.group("key") is not None:
        if not isinstance(value, dict) or match.group("key") not in value:
            raise where.error(path, f"expected a mapping with key {match.group('key')!r}")
        value = value[match.group("key")]
    if value is None:
        raise where.error(path, "missing value (null)")
    return value


def fields(spec: TaskSpec, row: dict[str, Any], where: RowContext) -> dict[str, Any]:
    """Our field name -> value, read through the task's column mapping."""
    return {name: _extract(row, path, where) for name, path in spec.columns.items()}


def _text(values: dict[str, Any], name: str, spec: TaskSpec, where: RowContext) -> str:
    value = values[name]
    if not isinstance(value, str):
        raise where.error(spec.columns[name], f"expected text, got {type(value).__name__}")
    return value


def join_space(prompt: str, completion: str) -> str:
    """Open-instruct rule: a space joins prompt and completion unless either side has whitespace."""
    return "" if prompt.endswith(_WS) or completion.startswith(_WS) else " "


def token_boundary(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's final whitespace character onto the continuation.

    "Inference: " + "yes" becomes "Inference:" + " yes", so a tokenizer that sees the two sides
    separately produces the same " yes" token as the joined text, never a lone trailing-space token
    (allenai/OLMo#515). Training segments use it (open-instruct masks `prompt[:-1]` the same way);
    scorers should apply it to (context, candidate) before tokenizing the two sides apart.
    """
    if context.endswith(_WS):
        return context[:-1], context[-1] + continuation
    return context, continuation


def sft_segments(prompt: str, completion: str) -> tuple[Segment, ...]:
    """(prompt, no loss), (join + completion, loss, eos), split at `token_boundary`.

    The texts concatenate to exactly prompt + join + completion.
    """
    head, tail = token_boundary(prompt, join_space(prompt, completion) + completion)
    return (Segment(head, train=False), Segment(tail, train=True, eos=True))


def _format(pattern: str, values: dict[str, Any]) -> str:
    return pattern.format_map(values)  # values are substituted, never parsed: braces in data are safe


def render_row(spec: TaskSpec, row: dict[str, Any], fmt: str, mode: str, where: RowContext,
               example_id: str) -> Rendered:
    """Render one row; DataError on anything that cannot be rendered faithfully."""
    if spec.task_type == "chat":
        return _render_chat(spec, row, where, example_id)
    values = fields(spec, row, where)
    if spec.task_type == "multiple_choice":
        return _render_mc(spec, values, fmt, where, example_id)
    texts = {name: _text(values, name, spec, where) for name in values if name not in ("label",)}
    prompt = _format(template_string(spec.template, fmt, mode), texts)
    if spec.task_type == "generation":
        completion = texts["target"]
        if not completion.strip():
            raise where.error(spec.columns["target"], "empty target")
        return Rendered(example_id, prompt, completion, sft_segments(prompt, completion), None, ())
    try:
        word = spec.label_word(values["label"], mode)
    except ValueError as exc:
        raise where.error(spec.columns["label"], f"label outside the label set: {exc}") from None
    assert spec.label_words is not None
    if mode == "faithful":  # the study's completion strings, scored by its verbalizers
        candidates = spec.label_words
    else:
        candidates = tuple(join_space(prompt, w) + w for w in spec.label_words)
    return Rendered(example_id, prompt, word, sft_segments(prompt, word),
                    spec.label_words.index(word), candidates)


# --- multiple choice ----------------------------------------------------------------------------

def _hellaswag_clean(text: str) -> str:
    """lm-eval's HellaSwag cleanup: WikiHow "[title]" markers become sentence breaks, brackets go."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _mc_options(spec: TaskSpec, values: dict[str, Any], where: RowContext) -> tuple[list[str], int]:
    key = spec.template
    if key in ("mc_arc", "mc_openbookqa"):
        options, labels, answer = values["choices"], values["choice_labels"], values["answer"]
        if answer not in labels:
            raise where.error(spec.columns["answer"], f"label outside the label set: {answer!r} not in {labels}")
        return list(options), list(labels).index(answer)
    if key == "mc_hellaswag":
        raw = values["answer"]
        if str(raw).strip() not in {str(i) for i in range(len(values["choices"]))}:
            raise where.error(spec.columns["answer"], f"label outside the label set: {raw!r}")
        return [_hellaswag_clean(e) for e in values["choices"]], int(raw)
    if key == "mc_boolq":
        if not isinstance(values["answer"], bool):
            raise where.error(spec.columns["answer"], f"label outside the label set: {values['answer']!r}")
        return ["no", "yes"], int(values["answer"])
    if key == "mc_sciq":
        return [values["distractor1"], values["distractor2"], values["distractor3"], values["correct"]], 3
    answer_rule = TEMPLATE_OPTIONS.get(key, {}).get("mc_answer")
    if answer_rule is not None:  # a declared task (docs/tasks.md): a list of options and the gold's key
        return _declared_mc_options(spec, values, str(answer_rule), where)
    raise ValueError(f"no multiple-choice rule for template {key!r}")


def _declared_mc_options(spec: TaskSpec, values: dict[str, Any], rule: str,
                         where: RowContext) -> tuple[list[str], int]:
    """A declared task's options and gold index: `answer` is a label in `choice_labels` ("label"), or the
    gold's 0-based position, as an integer or its digits ("index": HellaSwag writes "2")."""
    options, answer = values["choices"], values["answer"]
    if not isinstance(options, (list, tuple)) or not options:
        raise where.error(spec.columns["choices"], f"expected a non-empty list of options, got {options!r}")
    if rule == "label":
        labels = values["choice_labels"]
        if not isinstance(labels, (list, tuple)) or answer not in labels:
            raise where.error(spec.columns["answer"], f"label outside the label set: {answer!r} not in {labels}")
        return list(options), list(labels).index(answer)
    if isinstance(answer, str) and answer.strip().isdigit():
        answer = int(answer.strip())
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(options):
        raise where.error(spec.columns["answer"],
                          f"label outside the label set: {answer!r} is not an index of {len(options)} options")
    return list(options), answer


def _render_mc(spec: TaskSpec, values: dict[str, Any], fmt: str, where: RowContext,
               example_id: str) -> Rendered:
    options, gold = _mc_options(spec, values, where)
    if not all(isinstance(o, str) for o in options):
        raise where.error(spec.columns.get("choices", "options"), "options must be text")
    if not options[gold].strip():
        raise where.error(spec.columns.get("choices", "options"), "empty target (gold option)")
    texts = {k: v for k, v in values.items() if isinstance(v, str)}
    if spec.template == "mc_hellaswag":
        texts["ctx_b"] = texts["ctx_b"].capitalize()
    # the built-ins have only "default"; a declared task may have a query per format
    prompt = _format(template_string(spec.template, fmt, "fixed"), texts)
    options_cfg = TEMPLATE_OPTIONS.get(spec.template, {})
    if options_cfg.get("preprocess") == "hellaswag":
        prompt = _hellaswag_clean(prompt)
    if options_cfg.get("strip"):
        prompt = prompt.strip()
    completion = options[gold]
    return Rendered(example_id, prompt, completion, sft_segments(prompt, completion), gold,
                    tuple(" " + o for o in options))


# --- chat (Tulu) --------------------------------------------------------------------------------

def _render_chat(spec: TaskSpec, row: dict[str, Any], where: RowContext, example_id: str) -> Rendered:
    messages = _extract(row, spec.columns["messages"], where)
    field = spec.columns["messages"]
    if not isinstance(messages, list) or not messages:
        raise where.error(field, "expected a non-empty list of messages")
    pieces: list[Segment] = []
    last_assistant = -1
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise where.error(f"{field}[{i}]", "expected {'role', 'content'} with text content")
        role, content = message.get("role"), message["content"].strip()
        if role in ("system", "user"):
            pieces.append(Segment(CHAT[role].format(content=content), train=False))
        elif role == "assistant":
            if not content:
                raise where.error(f"{field}[{i}].content", "empty target (assistant turn)")
            pieces.append(Segment(CHAT["assistant_header"], train=False))
            pieces.append(Segment(content, train=True, eos=True))
            pieces.append(Segment(CHAT["turn_end"], train=True))
            last_assistant = len(pieces) - 2
        else:
            raise where.error(f"{field}[{i}].role", f"unknown role {role!r}")
    if last_assistant < 0:
        raise where.error(field, "empty target (no assistant turn)")
    # open-instruct strips the whole text: the final turn end goes, and so does trailing whitespace
    pieces[-1] = Segment(pieces[-1].text.rstrip(), pieces[-1].train, pieces[-1].eos)
    segments = _merge(p for p in pieces if p.text or p.eos)
    prompt = "".join(p.text for p in pieces[:last_assistant])
    completion = pieces[last_assistant].text
    return Rendered(example_id, prompt, completion, segments, None, ())


def _merge(pieces: Iterable[Segment]) -> tuple[Segment, ...]:
    """Join neighbours with the same loss flag (never across an eos)."""
    out: list[Segment] = []
    for piece in pieces:
        if out and out[-1].train == piece.train and not out[-1].eos:
            out[-1] = Segment(out[-1].text + piece.text, piece.train, piece.eos)
        else:
            out.append(piece)
    return tuple(out)
