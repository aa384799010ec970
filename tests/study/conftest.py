import copy
import os

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(REPO, "configs", "paper.yaml")
SMOKE = os.path.join(REPO, "configs", "smoke.yaml")


@pytest.fixture
def paper_raw() -> dict:
    with open(PAPER, encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture
def smoke_raw() -> dict:
    with open(SMOKE, encoding="utf-8") as f:
        return yaml.safe_load(f)


def edited(raw: dict, **paths) -> dict:
    """A deep copy of `raw` with dotted paths set (`train__epochs=1` sets train.epochs)."""
    out = copy.deepcopy(raw)
    for dotted, value in paths.items():
        node = out
        parts = dotted.split("__")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return out
