"""Shared fixtures: one tiny OLMo per session (the gloo group, `dist_env`, is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from ptft.core.tiny import build_tiny_model

# Text in the shape of the training data, so the tiny tokenizer learns useful merges.
_CORPUS = [
    "### Input_1: A man is playing a guitar.\n ### Input_2: A person plays music.\n ### Inference: entailment",
    "### Input_1: The dog sleeps.\n ### Input_2: The dog runs in the park.\n ### Inference: contradiction",
    "<|user|>\nWrite a haiku about the sea.\n<|assistant|>\nWaves fold into foam.",
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised tiny OLMo + tokenizer on disk, built once per session."""
    return build_tiny_model(str(tmp_path_factory.mktemp("tiny-olmo")), texts=_CORPUS * 20, seed=0)


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)
