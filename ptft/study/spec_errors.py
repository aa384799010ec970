"""Spec errors that a person can act on: each names the YAML field, the bad value and what is allowed."""

from __future__ import annotations

import difflib
import re
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


class SpecError(ValueError):
    """A spec that cannot run. `problems` holds one line per bad field."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}invalid experiment spec\n" + "\n".join(f"  {p}" for p in problems))

    def __reduce__(self):  # the default would call __init__(message) and split the message into letters
        return (type(self), (self.problems, self.source))


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the field at `loc` (to list allowed keys for a typo)."""
    model: type[BaseModel] | None = root
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        # A tagged union's error path names the member's tag next: follow that member.
        member = _tagged_member(field.annotation, parts[0]) if parts else None
        if member is not None:
            parts.pop(0)
        model = member or _find_model(field.annotation)
    return model


def _tagged_member(annotation: Any, tag: Any) -> type[BaseModel] | None:
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            name = arg.model_fields.get("name")
            if name is not None and name.default == tag:
                return arg
        elif typing.get_args(arg):
            found = _tagged_member(arg, tag)
            if found is not None:
                return found
    return None


def _yaml_loc(loc: tuple) -> tuple:
    """The path as the YAML spells it: a method entry is written flat (`{name: lora, r: 8}`), so its
    `method` field and the union member's tag are not part of the path."""
    out: list[Any] = []
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if part == "method" and out and isinstance(out[-1], int):
            if parts and isinstance(parts[0], str) and parts[0] in _METHOD_TAGS:
                parts.pop(0)
            continue
        out.append(part)
    return tuple(out)


_METHOD_TAGS = ("full", "lora", "prompt_tuning", "p_tuning")


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def explain(err: ValidationError, root: type[BaseModel], hidden: set[str] = frozenset()) -> list[str]:
    """One readable line per problem: the YAML field, what is wrong, the bad value, what is allowed."""
    problems = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-"))))
        # A union reports one error per member; the list member's path ends in "list[float]"-like names.
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("LogUniform",))))
        where = _format_loc(_yaml_loc(loc))
        kind = e["type"]
        if kind == "extra_forbidden":
            owner = _model_at(root, loc[:-1])
            allowed = [(f.alias or n) for n, f in owner.model_fields.items() if n not in hidden] if owner else []
            if loc[-2:-1] and loc[-2] in _METHOD_TAGS:
                allowed.append("learning_rates")  # written beside the method's own fields
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(f"{where}: unknown key{did_you_mean}; allowed keys: {', '.join(allowed)}")
            continue
        if kind == "missing":
            problems.append(f"{where}: required field is missing")
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if msg.startswith("[") and "]: " in msg:  # a list validator that already names the index
            index, msg = msg.split(": ", 1)
            where += index
        elif re.match(r"^(datasets|formats|shots|methods)(\[\d+\])?(\.formats|\.methods)?(\[\d+\])?: ", msg):
            sub, msg = msg.split(": ", 1)
            where = f"{where}.{sub}" if where else sub
        bad = e.get("input")
        shown = "" if isinstance(bad, (dict, list)) or repr(bad) in msg else f" (got {bad!r})"
        # a whole-spec validator names its field itself (`recipes.r[0].reward.revision: ...`)
        problems.append(f"{where}: {msg}{shown}" if where else f"{msg}{shown}")
    # A union of list-or-range yields duplicate lines for one mistake; keep each once, in order.
    return list(dict.fromkeys(problems))
