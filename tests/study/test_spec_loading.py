"""Reading a spec: duplicated keys, non-UTF-8 bytes, malformed `--set` values and list items in `--set`
are named with the file, line or key, never a traceback or a silent override."""

from __future__ import annotations

import pytest

from ptft.cli.main import main
from ptft.study.spec import SpecError, load_spec
from tests.study.conftest import SMOKE


def test_a_duplicated_key_is_an_error_with_both_lines(tmp_path):
    text = open(SMOKE).read()
    path = tmp_path / "dup.yaml"
    path.write_text(text + "\nname: other\n")  # `name` again at the end: PyYAML would keep this one
    with pytest.raises(SpecError, match=r"duplicate key 'name' \(first at line \d+, again at line \d+\)"):
        load_spec(str(path))


def test_a_non_utf8_spec_names_the_line(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(open(SMOKE, "rb").read() + b"\n# caf\xe9\n")
    with pytest.raises(SpecError, match=r"latin1.yaml: line \d+ is not UTF-8"):
        load_spec(str(path))
    assert main(["plan", str(path)]) == 2
    assert "is not UTF-8" in capsys.readouterr().err


def test_malformed_set_value_is_named():
    with pytest.raises(SpecError, match="--set train.epochs: not valid YAML"):
        load_spec(SMOKE, ["train.epochs=[1"])


def test_set_addresses_list_items():
    spec = load_spec(SMOKE, ["train.datasets[0]=paws"])
    assert spec.train.datasets[0].name == "paws"
    with pytest.raises(SpecError, match=r"train.datasets\[9\] is out of range"):
        load_spec(SMOKE, ["train.datasets[9]=paws"])
    with pytest.raises(SpecError, match="is not a field name"):
        load_spec(SMOKE, ["train..epochs=1"])
