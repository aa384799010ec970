"""Fixtures for the evaluator tests: one tiny OLMo per session, loaded once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tiny model is far faster on one thread; two threads on a shared 2-core box spin and stall."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A randomly initialised tiny OLMo and its tokenizer, written once per test session."""
    from ptft.core.tiny import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("tiny-olmo")), seed=0)


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    """The tiny model loaded for scoring (fp32, CPU)."""
    from evals.model_loading import load_model

    return load_model(tiny_model_dir, precision="fp32", device="cpu")
