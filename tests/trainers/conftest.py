"""Shared fixtures: one tiny OLMo per session and one world-size-1 gloo group per session.

The process group is session-scoped on purpose: DeepSpeed caches groups, and a second
`init_process_group` after a `destroy_process_group` in the same process fails (docs/stack.md §3).
"""

from __future__ import annotations

import os
import socket

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


@pytest.fixture(scope="session")
def dist_env():
    """A world-size-1 gloo process group shared by every in-process DeepSpeed test."""
    import torch.distributed as dist

    if not dist.is_initialized():
        with socket.socket() as s:  # a free port: other suites may run beside this one
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    yield
    if dist.is_initialized():
        dist.destroy_process_group()
