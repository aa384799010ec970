"""YAML the way configs need it: a duplicated key is an error (PyYAML keeps the last one silently), and
a file that is not UTF-8 or not YAML is named with its line, not raised as a bare traceback."""

from __future__ import annotations

from typing import Any

import yaml


class YamlError(ValueError):
    """A config file (or value) that cannot be read; the message names the file and line."""


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key]}, again at line {line})",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str = "<text>") -> Any:
    """Parse YAML text strictly; raises `YamlError` naming `source` and the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise YamlError(f"{source}: not valid YAML: {err}") from None


def read_yaml(path: str) -> Any:
    """Read a YAML file strictly; a missing file raises FileNotFoundError, the rest `YamlError`."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise YamlError(f"{path}: line {line} is not UTF-8 (byte {data[err.start]:#04x}); save the file as "
                        "UTF-8") from None
    return parse_yaml(text, source=path)
