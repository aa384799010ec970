"""Tiny stand-ins for hub models: a byte-level BPE tokenizer trained locally and a small OLMo.

Tests, benchmarks and the embedded demo use these instead of downloads; the code paths that load them
(`from_pretrained(dir)`) are the same ones that load `allenai/OLMo-1B-hf`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

PAD_TOKEN = "<|pad|>"
EOS_TOKEN = "<|endoftext|>"

# Enough plain English to give the BPE merges something to learn when no corpus is passed.
_DEFAULT_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the street. A woman reads a book in the park.",
    "### Input: The cat sat on the mat.\n ### Summary: A cat sat.",
    "Please read the following text and provide a summary. Consider the following texts.",
    "entailment neutral contradiction yes no Answer A Answer B Answer C Question",
    "<|user|>\nWhat is two plus two?\n<|assistant|>\nFour.",
]


def train_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 512):
    """Train a byte-level BPE tokenizer in memory and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[PAD_TOKEN, EOS_TOKEN],
        show_progress=False,
    )
    corpus = list(texts) if texts is not None else []
    tok.train_from_iterator(corpus + _DEFAULT_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN,
        padding_side="right",
    )


def tiny_olmo_config(vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4,
                     intermediate: int = 128, max_positions: int = 1024, pad_token_id: int = 0,
                     eos_token_id: int = 1):
    """An OLMo-architecture config small enough to train on 2 CPU cores."""
    from transformers import OlmoConfig

    return OlmoConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_positions, pad_token_id=pad_token_id, eos_token_id=eos_token_id,
        bos_token_id=eos_token_id, tie_word_embeddings=False,
    )


def build_tiny_model(out_dir: str, texts: Iterable[str] | None = None, seed: int = 0,
                     vocab_size: int = 512, **config_overrides) -> str:
    """Write a randomly initialised tiny OLMo plus its tokenizer to `out_dir`; returns the path."""
    import torch
    from transformers import OlmoForCausalLM

    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    config = tiny_olmo_config(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, **config_overrides,
    )
    torch.manual_seed(seed)
    model = OlmoForCausalLM(config)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
