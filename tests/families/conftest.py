"""Tiny stand-ins of each family's class (docs/families.md §3), built once per session, and the one
world-size-1 gloo group every in-process DeepSpeed test shares (docs/stack.md §3)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest

from ptft.core.tiny import TINY_ARCHITECTURES, build_tiny_model

ARCHITECTURES = tuple(TINY_ARCHITECTURES)  # olmo, olmo2, gpt_neox, llama

# Text in the shape of the training data (mnli's default format), so the tokenizers learn useful merges.
CORPUS = [
    "### Input_1: A man is playing a guitar.\n ### Input_2: A person plays music.\n ### Inference: entailment",
    "### Input_1: The dog sleeps.\n ### Input_2: The dog runs in the park.\n ### Inference: contradiction",
    "### Input_1: A woman reads.\n ### Input_2: Someone is reading a book.\n ### Inference: neutral",
]

# Tied as the families are: OLMo-1B (weight tying) and SmolLM2/Llama-3.2 tie; OLMo-2 and Pythia do not.
TIED = {"olmo": True, "olmo2": False, "gpt_neox": False, "llama": True}


@pytest.fixture(scope="session")
def tiny_family_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """`tiny_family_model(arch)`: the folder of a randomly initialised tiny model of that class."""
    built: dict[str, str] = {}

    def get(architecture: str) -> str:
        if architecture not in built:
            folder = str(tmp_path_factory.mktemp(f"tiny-{architecture}"))
            built[architecture] = build_tiny_model(folder, texts=CORPUS * 20, seed=0, architecture=architecture,
                                                   tie_word_embeddings=TIED[architecture])
        return built[architecture]
    return get


@pytest.fixture(scope="session")
def dist_env():
    """A world-size-1 gloo process group shared by every in-process DeepSpeed test of the session."""
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
