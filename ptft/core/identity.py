"""Identity declared on the config fields themselves: does a field define a result, or only how it is run?

Every field of a config that feeds an id (`TrainConfig`, `EvalConfig`) is declared with `defines(...)`
(changing it changes the result: the trial, eval job and cache ids move) or `setting(...)` (how the
work is run: batch size for scoring, logging cadence, the MFU peak; ids stay). The plan, the trial and
eval-job ids and the evaluator's cache all read `identity_of(config)`, so there is one declaration,
and `undeclared_fields` lets a test refuse a new field that says neither.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

_KEY = "identity"
DEFINES, SETTING = "defines", "setting"


def defines(default: Any = ..., **kwargs: Any) -> Any:
    """A pydantic `Field` whose value is part of the result's identity."""
    return Field(default, json_schema_extra={_KEY: DEFINES}, **kwargs)


def setting(default: Any = ..., **kwargs: Any) -> Any:
    """A pydantic `Field` that only says how the work is run; ids ignore it."""
    return Field(default, json_schema_extra={_KEY: SETTING}, **kwargs)


def _declared(model: type[BaseModel], name: str) -> str | None:
    extra = model.model_fields[name].json_schema_extra
    return extra.get(_KEY) if isinstance(extra, dict) else None


def defining_fields(model: type[BaseModel]) -> list[str]:
    return [name for name in model.model_fields if _declared(model, name) == DEFINES]


def setting_fields(model: type[BaseModel]) -> list[str]:
    return [name for name in model.model_fields if _declared(model, name) == SETTING]


def undeclared_fields(model: type[BaseModel]) -> list[str]:
    return [name for name in model.model_fields if _declared(model, name) not in (DEFINES, SETTING)]


def identity_of(config: BaseModel) -> dict[str, Any]:
    """The defining fields of `config` as JSON-ready values (what ids hash)."""
    cls = type(config)
    missing = undeclared_fields(cls)
    if missing:
        raise TypeError(f"{cls.__name__}: fields {missing} declare neither defines() nor setting()")
    dumped = config.model_dump(mode="json")
    return {name: dumped[name] for name in defining_fields(cls)}
