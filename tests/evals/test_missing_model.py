"""A model path that is not there is named as a missing directory, not tried as a hub repo id."""

from __future__ import annotations

import pytest

from evals.model_loading import ModelLoadError, load_tokenizer
from ptft.cli.main import main


@pytest.mark.parametrize("path", ["/no/such/model", "./runs/x/model", "runs/grid/trials/abc/model"])
def test_missing_local_model_dir_is_named(path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_tokenizer(path)


def test_ptft_eval_on_a_missing_dir_says_so(tmp_path, capsys):
    missing = str(tmp_path / "no-model")
    assert main(["eval", "--model", missing, "--tasks", "rte", "--out", str(tmp_path / "out"),
                 "--data-source", "mini", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"model directory {missing!r} does not exist" in err and "Repo id" not in err
