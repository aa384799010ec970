"""Command-line flags generated from a pydantic model, so each option is declared once: on its model.

    cli = CommandLine("ptft eval", EvalCommand, description="...")
    cli.parser.add_argument(...)               # a command may add its own plain arguments
    config, args = cli.parse(argv)             # a validated EvalCommand, and argparse's namespace

The rules, the same for every command:

- names: a field's flag is its name with dashes, `max_new_tokens` -> `--max-new-tokens`. A field whose
  type is itself a model contributes one flag per inner field, prefixed by the outer field's name:
  `wandb.project` -> `--wandb-project` (`flatten=` drops the prefix for the fields named there, so
  `--model-kind` rather than `--identity-model-kind`); config files and `--set` always use the dotted
  key (`wandb.project`). `rename=` can give a field another flag name (`{"tasks": "--tasks"}`).
- help: the field's `description`, then the model's default: `(default: 16)`, or `(required)`.
- values: `Literal[...]` -> `choices`; `bool` -> `--x` / `--no-x`; lists, tuples and sets take one
  comma-separated value (`--shots 0,4`); an optional field takes `null` for None; every other value is
  passed as text and converted and checked by pydantic (never by argparse), so a flag, a config file and
  `--set` give the same errors.
- sources, later wins: the model's defaults < `--config FILE.yaml` (a mapping of the same fields, nested
  for nested models) < the generated flags < each `--set dotted.key=yaml_value`, in order. `--set`
  values are YAML (`--set limit=null`, `--set shots=[0,4]`); a number given to a text field stays text.
- errors: pydantic's, one line per field naming the dotted key and the flag, on stderr; exit status 2
  (as argparse does for its own usage errors).

Commands that run an experiment spec (`plan`, `run`, `status`, `submit`) take the spec as their CONFIG
argument and `--set` edits the spec (`add_spec_arguments`); their few own options are still generated here.
`--set` is declared in one place: `add_overrides`.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ptft.core.yaml_files import YamlError, read_yaml

_DEST = "_flag:"  # argparse dest prefix of generated flags; the rest is the dotted key
_NULL = ("null", "none", "None", "~")


# ---------------------------------------------------------------------------------------------- --set


def add_overrides(parser: argparse.ArgumentParser, target: str = "a config field") -> None:
    """The one `--set` option: repeatable `dotted.key=yaml_value`, applied last, in order."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override {target} (dotted key, YAML value), e.g. --set train.epochs=1; "
                             "repeatable, applied last, later ones win")


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """What every command on an experiment spec takes: the spec file and `--set` edits of it."""
    parser.add_argument("config", metavar="CONFIG", help="experiment spec (YAML)")
    add_overrides(parser, target="a spec field")


def parse_override(item: str) -> tuple[str, str]:
    """`dotted.key=value` -> (key, raw value text); raises ValueError on anything else."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set {item!r}: expected dotted.key=value, e.g. --set batch_size=8")
    return key.strip(), value


# ---------------------------------------------------------------------------------------- annotations


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without None, whether None is allowed)."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = typing.get_args(annotation)
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) < len(args):
            return (rest[0] if len(rest) == 1 else Union[rest]), True  # noqa: UP007 (a runtime Union)
    return annotation, False


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_sequence(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (list, tuple, set, frozenset, Sequence)


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(_show(v) for v in value) or "(empty)"
    return str(value)


# -------------------------------------------------------------------------------------------- flags


@dataclass(frozen=True)
class Flag:
    """One generated option: the dotted key it sets and how its text becomes a value."""

    key: str  # dotted: "wandb.project"
    option: str  # "--wandb-project"
    annotation: Any  # without None
    nullable: bool

    def value(self, text: Any) -> Any:
        """The flag's text -> the value handed to pydantic (which converts and checks it)."""
        if not isinstance(text, str):  # bool flags: argparse already gave True/False
            return text
        if self.nullable and text in _NULL:
            return None
        if typing.get_origin(self.annotation) is Literal:
            return {str(v): v for v in typing.get_args(self.annotation)}.get(text, text)
        if _is_sequence(self.annotation):
            return [part.strip() for part in text.split(",") if part.strip()]
        if typing.get_origin(self.annotation) is dict or self.annotation in (dict, Any):
            return yaml.safe_load(text)
        return text


def model_flags(model: type[BaseModel], *, rename: Mapping[str, str] | None = None,
                flatten: Sequence[str] = (), exclude: Sequence[str] = (), _prefix: str = "",
                _flag_prefix: str = "") -> list[tuple[Flag, FieldInfo]]:
    """The flags of every field of `model` (nested models expanded), in declaration order."""
    out: list[tuple[Flag, FieldInfo]] = []
    for name, field in model.model_fields.items():
        key = _prefix + name
        if key in exclude:
            continue
        annotation, nullable = _split_optional(field.annotation)
        if _is_model(annotation):
            inner_flag_prefix = _flag_prefix if key in flatten else f"{_flag_prefix}{name.replace('_', '-')}-"
            out += model_flags(annotation, rename=rename, flatten=flatten, exclude=exclude,
                               _prefix=key + ".", _flag_prefix=inner_flag_prefix)
            continue
        option = (rename or {}).get(key) or f"--{_flag_prefix}{name.replace('_', '-')}"
        out.append((Flag(key, option, annotation, nullable), field))
    return out


def _help(flag: Flag, field: FieldInfo) -> str:
    text = (field.description or "").rstrip()
    default = _default(field)
    shown = "required" if default is PydanticUndefined else f"default: {_show(default)}"
    if _is_sequence(flag.annotation):
        text += " Comma-separated."
    return f"{text} ({shown})".strip().replace("%", "%%")


def _metavar(flag: Flag) -> str:
    if _is_sequence(flag.annotation):
        return "A,B,..."
    return {int: "N", float: "X"}.get(flag.annotation) or flag.key.rsplit(".", 1)[-1].upper()


def add_model_flags(parser: argparse.ArgumentParser, model: type[BaseModel], *,
                    rename: Mapping[str, str] | None = None, flatten: Sequence[str] = (),
                    exclude: Sequence[str] = (), groups: Mapping[str, Sequence[str]] | None = None) -> list[Flag]:
    """Add one option per field of `model` to `parser`; every default stays on the model.

    `groups` (title -> dotted keys) puts those fields' flags under titled headings in `--help`, after the
    ungrouped ones; a nested model's fields get a heading of their own (the outer field's description).
    """
    titled = {key: title for title, keys in (groups or {}).items() for key in keys}
    generated = model_flags(model, rename=rename, flatten=flatten, exclude=exclude)
    order = {title: i for i, title in enumerate(groups or {})}
    generated.sort(key=lambda pair: -1 if pair[0].key not in titled else order[titled[pair[0].key]])  # stable
    flags = []
    headings: dict[str, Any] = {}
    for flag, field in generated:
        target: Any = parser
        title = titled.get(flag.key)
        if title is None and "." in flag.key:  # a nested model's fields get a titled group
            outer = flag.key.rsplit(".", 1)[0]
            outer_field = _field_at(model, outer)
            title = outer_field.description if outer_field and outer_field.description else outer
        if title is not None:
            if title not in headings:
                headings[title] = parser.add_argument_group(title)
            target = headings[title]
        kwargs: dict[str, Any] = {"dest": _DEST + flag.key, "default": argparse.SUPPRESS,
                                  "help": _help(flag, field)}
        if flag.annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = _metavar(flag)
            if typing.get_origin(flag.annotation) is Literal:
                choices = [str(v) for v in typing.get_args(flag.annotation)]
                kwargs["choices"] = choices + (["null"] if flag.nullable else [])
                kwargs["metavar"] = "{" + ",".join(kwargs["choices"]) + "}"
        target.add_argument(flag.option, **kwargs)
        flags.append(flag)
    return flags


def _field_at(model: type[BaseModel], key: str) -> FieldInfo | None:
    """The field at a dotted key (through nested models), or None."""
    field: FieldInfo | None = None
    current: Any = model
    for part in key.split("."):
        if not _is_model(current) or part not in current.model_fields:
            return None
        field = current.model_fields[part]
        current = _split_optional(field.annotation)[0]
    return field


def model_from_dataclass(cls: type, *, name: str | None = None, optional: Sequence[str] = (),
                         descriptions: Mapping[str, str] | None = None) -> type[BaseModel]:
    """A pydantic model with the fields of the dataclass `cls` (types and defaults read from it, so they
    stay declared there); the fields named in `optional` default to None instead of being required.
    A field's help is its `metadata["description"]`, else `descriptions[name]`."""
    import dataclasses

    from pydantic import ConfigDict, create_model

    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        annotation = hints[f.name]
        description = f.metadata.get("description") or (descriptions or {}).get(f.name)
        if f.default is not dataclasses.MISSING:
            spec = Field(f.default, description=description)
        elif f.default_factory is not dataclasses.MISSING:
            spec = Field(default_factory=f.default_factory, description=description)
        elif f.name in optional:
            annotation, spec = annotation | None, Field(None, description=description)
        else:
            spec = Field(..., description=description)
        fields[f.name] = (annotation, spec)
    config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())
    return create_model(name or f"{cls.__name__}Options", __config__=config, **fields)


# ------------------------------------------------------------------------------------------ merging


def _set(data: dict[str, Any], key: str, value: Any, what: str) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"{what}: {part!r} is not a section")
    node[parts[-1]] = value


def _text_for_text_fields(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """A number that YAML read for a text field (or a list of text) becomes its text (`checkpoint: 1000`)."""
    out = dict(data)
    for name, value in data.items():
        field = model.model_fields.get(name)
        if field is None:
            continue
        annotation, _ = _split_optional(field.annotation)
        if _is_model(annotation) and isinstance(value, dict):
            out[name] = _text_for_text_fields(annotation, value)
        elif annotation is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = str(value)
        elif (_is_sequence(annotation) and isinstance(value, list)
              and all(a is str for a in typing.get_args(annotation) if a is not Ellipsis)
              and typing.get_args(annotation)):
            out[name] = [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
    return out


def read_config_file(path: str) -> dict[str, Any]:
    """A `--config` file: a YAML mapping (empty file: nothing set)."""
    try:
        raw = read_yaml(path)
    except FileNotFoundError:
        raise ValueError(f"--config {path}: file not found") from None
    except YamlError as err:
        raise ValueError(f"--config {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"--config {path}: the top level must be a mapping of fields")
    return raw


def merge_sources(model: type[BaseModel], *, config: Mapping[str, Any] | None = None,
                  flags: Mapping[str, Any] | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The raw input for `model`: config file < flags (dotted key -> value) < --set items, in order."""
    import copy

    data: dict[str, Any] = copy.deepcopy(dict(config or {}))
    for key, value in (flags or {}).items():
        _set(data, key, value, f"flag for {key}")
    for item in overrides:
        key, text = parse_override(item)
        field = _field_at(model, key)
        annotation = _split_optional(field.annotation)[0] if field else None
        value: Any
        if annotation is str and text not in _NULL:
            value = text  # a text field keeps the text: --set checkpoint=1000, --set revision=0a1b
        else:
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as err:
                raise ValueError(f"--set {item!r}: the value is not valid YAML ({err})") from None
        _set(data, key, value, f"--set {item!r}")
    return _text_for_text_fields(model, data)


def explain_errors(err: ValidationError, model: type[BaseModel], flags: Sequence[Flag] = ()) -> list[str]:
    """One line per bad field: the dotted key, its flag, what is wrong and the bad value."""
    from ptft.study.spec_errors import explain

    options = {f.key: f.option for f in flags}
    lines = []
    for line in explain(err, model):
        where, sep, rest = line.partition(": ")
        if not where:  # a check across fields (a model validator): its message says which
            lines.append(rest)
            continue
        option = options.get(where.split("[", 1)[0])
        lines.append(f"{where} ({option}){sep}{rest}" if option and sep else line)
    return lines


def fail(prog: str, lines: Sequence[str]) -> typing.NoReturn:
    """Print usage-error lines on stderr and exit 2, as argparse does."""
    for line in lines:
        print(f"{prog}: error: {line}", file=sys.stderr)
    raise SystemExit(2)


# ------------------------------------------------------------------------------------------ commands


class CommandLine:
    """A command's parser built from its config model, plus `--config` and `--set` when asked."""

    def __init__(self, prog: str, model: type[BaseModel], *, description: str | None = None,
                 epilog: str | None = None, rename: Mapping[str, str] | None = None,
                 flatten: Sequence[str] = (), exclude: Sequence[str] = (),
                 groups: Mapping[str, Sequence[str]] | None = None, config_file: bool = True,
                 overrides: bool = True, parser: argparse.ArgumentParser | None = None) -> None:
        self.model = model
        self.parser = parser or argparse.ArgumentParser(
            prog=prog, description=description, epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter)
        self.prog = self.parser.prog
        self.config_file = config_file
        self.overrides = overrides
        if config_file:
            self.parser.add_argument("--config", dest="config_file", metavar="FILE.yaml", default=None,
                                     help="a YAML mapping of these options (keys are the field names; "
                                          "nested ones nest); flags and --set override it")
        if overrides:
            add_overrides(self.parser)
        self.flags = add_model_flags(self.parser, model, rename=rename, flatten=flatten, exclude=exclude,
                                     groups=groups)

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """The generated flags present on the command line: dotted key -> value for pydantic."""
        by_key = {f.key: f for f in self.flags}
        return {dest[len(_DEST):]: by_key[dest[len(_DEST):]].value(value)
                for dest, value in vars(args).items() if dest.startswith(_DEST)}

    def build(self, args: argparse.Namespace) -> Any:
        """The validated config from the parsed arguments; usage errors exit 2 with one line per field."""
        try:
            config = read_config_file(args.config_file) if self.config_file and args.config_file else {}
            data = merge_sources(self.model, config=config, flags=self.given(args),
                                 overrides=args.overrides if self.overrides else ())
        except ValueError as err:
            fail(self.prog, [str(err)])
        try:
            return self.model.model_validate(data)
        except ValidationError as err:
            fail(self.prog, explain_errors(err, self.model, self.flags))

    def parse(self, argv: Sequence[str] | None) -> tuple[Any, argparse.Namespace]:
        args = self.parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        return self.build(args), args


class _NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpecCommandLine(CommandLine):
    """A command on an experiment spec: CONFIG (the spec file) and `--set` edits of the spec, plus the
    command's own options generated from `model`."""

    def __init__(self, prog: str, model: type[BaseModel] | None = None, **kwargs: Any) -> None:
        super().__init__(prog, model or _NoOptions, config_file=False, overrides=False, **kwargs)
        add_spec_arguments(self.parser)

    def parse_plan(self, argv: Sequence[str] | None) -> tuple[Any, Any]:
        """(options, plan), or (options, None) after the spec's errors were printed (the caller exits 2)."""
        from ptft.study.plan import build_plan
        from ptft.study.spec import load_spec_or_report

        options, args = self.parse(argv)
        spec = load_spec_or_report(args.config, args.overrides)
        return options, (build_plan(spec) if spec is not None else None)
