"""Tiny stand-ins of each family's class (docs/families.md §3), built once per session (the gloo group every
in-process DeepSpeed test shares, `dist_env`, is in tests/conftest.py)."""

from __future__ import annotations

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
