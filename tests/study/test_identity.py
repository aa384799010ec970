"""Identity, generated from the fields' own declarations: every defining field moves the ids it defines,
every setting leaves them alone, and no field of an id-bearing config is left undeclared."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from evals.config import EvalConfig
from evals.jobs import EvalJob
from evals.runner import _cache_inputs
from ptft.core.identity import defining_fields, identity_of, setting_fields, undeclared_fields
from ptft.study.plan import build_plan
from ptft.study.spec import ResourcesSpec, parse_spec
from tests.study.conftest import edited
from trainers.config import TrainConfig
from trainers.methods import FullMethod, LoraMethod, PromptTuningMethod, PTuningMethod


def _other_value(info: FieldInfo, current: Any = None) -> Any:
    """A valid value other than `current` (default: the field's default), derived from its annotation."""
    default = info.default if current is None else current
    annotation = info.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is Literal:
        return next(choice for choice in typing.get_args(annotation) if choice != default)
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        return default / 2 if default else 0.5
    if isinstance(default, tuple):
        return tuple(x * 0.9 for x in default)
    if default is None and args and typing.get_origin(args[0]) is Literal:
        return typing.get_args(args[0])[0]
    if default is None and args:
        kind = typing.get_origin(args[0]) or args[0]
        return {int: 7, float: 1e12, str: "cpu"}[kind]
    raise AssertionError(f"no alternative value for a field of type {annotation}")


def _fields(model: type[BaseModel]) -> list[tuple[str, bool]]:
    return [(n, True) for n in defining_fields(model)] + [(n, False) for n in setting_fields(model)]


@pytest.mark.parametrize("model", [TrainConfig, EvalConfig, FullMethod, LoraMethod, PromptTuningMethod,
                                   PTuningMethod])
def test_every_field_declares_whether_it_defines_a_result(model):
    assert undeclared_fields(model) == []
    with pytest.raises(TypeError, match="declare neither"):
        class Loose(BaseModel):
            x: int = 1

        identity_of(Loose())


@pytest.mark.parametrize("name,defines", _fields(TrainConfig))
def test_train_field_moves_trial_ids_exactly_when_it_defines(paper_raw, name, defines):
    # No per-dataset epoch or lr overrides here, so every trial sees the change.
    raw = edited(paper_raw, train__max_steps=100)
    raw["train"]["datasets"] = ["mnli", "paws"]
    current = parse_spec(raw).train.train_config()
    value = _other_value(TrainConfig.model_fields[name], getattr(current, name))
    base, other = build_plan(parse_spec(raw)), build_plan(parse_spec(edited(raw, **{f"train__{name}": value})))
    before, after = {t.trial_id for t in base.trials}, {t.trial_id for t in other.trials}
    if defines:
        assert before.isdisjoint(after), f"train.{name} defines a result but left trial ids unchanged"
    else:
        assert before == after, f"train.{name} is a setting but moved trial ids"
        assert [j.job_id for j in base.eval_jobs] == [j.job_id for j in other.eval_jobs]


@pytest.mark.parametrize("name,defines", _fields(EvalConfig))
def test_eval_field_moves_job_ids_exactly_when_it_defines(paper_raw, name, defines):
    current = parse_spec(paper_raw).eval.eval_config()
    value = _other_value(EvalConfig.model_fields[name], getattr(current, name))
    raw = edited(paper_raw, **{f"eval__{name}": value})
    if name == "mode":  # fixed mode has formats the faithful spec never names: keep one both have
        raw["eval"]["formats"] = ["default"]
        paper_raw = edited(paper_raw, eval__formats=["default"])
    base, other = build_plan(parse_spec(paper_raw)), build_plan(parse_spec(raw))
    assert [t.trial_id for t in base.trials] == [t.trial_id for t in other.trials]
    before, after = [j.job_id for j in base.eval_jobs], [j.job_id for j in other.eval_jobs]
    if defines:
        assert set(before).isdisjoint(after), f"eval.{name} defines a result but left job ids unchanged"
    else:
        assert before == after, f"eval.{name} is a setting but moved job ids"


@pytest.mark.parametrize("name,defines", _fields(EvalConfig))
def test_eval_cache_key_reads_the_same_declaration(name, defines):
    es = types.SimpleNamespace(checksum="c", template_version="t")
    job = EvalJob("rte", "default", 0)

    def key(config: EvalConfig) -> dict:
        return _cache_inputs({"path": "m"}, job, config.mode, es, config, config.max_length, "float32")

    changed = EvalConfig(**{name: _other_value(EvalConfig.model_fields[name])})
    assert (key(changed) != key(EvalConfig())) is defines, name


@pytest.mark.parametrize("name", list(ResourcesSpec.model_fields))
def test_resources_never_move_ids(paper_raw, name):
    value = _other_value(ResourcesSpec.model_fields[name])
    base, other = build_plan(parse_spec(paper_raw)), build_plan(parse_spec(edited(paper_raw, **{f"resources__{name}": value})))
    assert [t.trial_id for t in base.trials] == [t.trial_id for t in other.trials]
    assert [j.job_id for j in base.eval_jobs] == [j.job_id for j in other.eval_jobs]


def test_mfu_peak_no_longer_retrains_a_grid(paper_raw):
    """The case that motivated the declaration: a new MFU peak used to move every trial id."""
    base = build_plan(parse_spec(paper_raw))
    other = build_plan(parse_spec(edited(paper_raw, train__peak_flops=1.979e15)))
    assert [t.trial_id for t in base.trials] == [t.trial_id for t in other.trials]


_METHOD_FIELDS = [(cls, name, defines) for cls in (LoraMethod, PromptTuningMethod, PTuningMethod)
                  for name, defines in _fields(cls) if name != "name"]


@pytest.mark.parametrize("cls,name,defines", _METHOD_FIELDS,
                         ids=[f"{c.__name__}.{n}" for c, n, _ in _METHOD_FIELDS])
def test_method_field_moves_cell_ids_exactly_when_it_defines(smoke_raw, cls, name, defines):
    tag = cls.model_fields["name"].default
    info = cls.model_fields[name]
    value = {"custom_label": "renamed", "target_modules": "attention", "init_text": "Another init text."}.get(
        name) or _other_value(info)
    key = info.alias or name
    base = build_plan(parse_spec(edited(smoke_raw, train__methods=[{"name": tag}])))
    other = build_plan(parse_spec(edited(smoke_raw, train__methods=[{"name": tag, key: value}])))
    before, after = {c.cell_id for c in base.cells}, {c.cell_id for c in other.cells}
    if defines:
        assert before.isdisjoint(after), f"{tag}.{name} defines a result but left cell ids unchanged"
    else:
        assert before == after, f"{tag}.{name} is a setting but moved cell ids"
