"""Tiny stand-ins for hub models: a byte-level BPE tokenizer trained locally and a small model.

Tests, benchmarks and the embedded demo use these instead of downloads; the code paths that load them
(`from_pretrained(dir)`) are the same ones that load `allenai/OLMo-1B-hf`. `build_tiny_model(dir,
architecture=...)` also builds stand-ins of the other families' classes (`OlmoForCausalLM`,
`Olmo2ForCausalLM`, `GPTNeoXForCausalLM`, `LlamaForCausalLM`), each with its family's tokenizer
conventions: pad token or none, BOS added or not, tied embeddings or not (docs/families.md §3).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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


BOS_TOKEN = "<s>"  # the Llama-style stand-in's own BOS (Llama, LLM360/Amber: "<s>")


@dataclass(frozen=True)
class TokenizerConventions:
    """What a family's tokenizer does with special tokens (docs/families.md §3).

    `specials` are the special tokens in id order (the first gets id 0: Pythia's eos is id 0).
    """

    specials: tuple[str, ...] = (PAD_TOKEN, EOS_TOKEN)
    pad: str | None = PAD_TOKEN  # None: no pad token (GPT-NeoX/Pythia, Llama): callers pad with eos
    eos: str = EOS_TOKEN
    bos: str | None = EOS_TOKEN  # the bos_token attribute (OLMo and Pythia set it to eos, never adding it)
    adds_bos: bool = False  # `tokenizer(text)` starts with bos (Llama-style)


def train_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 512,
                    conventions: TokenizerConventions | None = None):
    """Train a byte-level BPE tokenizer in memory and wrap it as a transformers fast tokenizer.

    The default conventions are the tiny OLMo's (pad and eos, nothing added); others come from
    `TINY_ARCHITECTURES`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    conv = conventions or TokenizerConventions()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(conv.specials),
        show_progress=False,
    )
    corpus = list(texts) if texts is not None else []
    tok.train_from_iterator(corpus + _DEFAULT_CORPUS, trainer=trainer)
    if conv.adds_bos:
        assert conv.bos is not None
        bos_id = tok.token_to_id(conv.bos)
        # The tokenizer.json post-processor, as Llama's fast tokenizers carry it: bos before every text.
        tok.post_processor = processors.TemplateProcessing(
            single=f"{conv.bos} $A", pair=f"{conv.bos} $A {conv.bos} $B", special_tokens=[(conv.bos, bos_id)])
    specials: dict[str, Any] = {"eos_token": conv.eos}
    if conv.pad is not None:
        specials["pad_token"] = conv.pad
    if conv.bos is not None:
        specials["bos_token"] = conv.bos
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="right", **specials)


def tiny_olmo_config(vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4,
                     intermediate: int = 128, max_positions: int = 1024, pad_token_id: int | None = 0,
                     eos_token_id: int = 1, **overrides: Any):
    """An OLMo-architecture config small enough to train on 2 CPU cores."""
    from transformers import OlmoConfig

    return OlmoConfig(**{
        "vocab_size": vocab_size, "hidden_size": hidden, "intermediate_size": intermediate,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": heads,
        "max_position_embeddings": max_positions, "pad_token_id": pad_token_id, "eos_token_id": eos_token_id,
        "bos_token_id": eos_token_id, "tie_word_embeddings": False, **overrides})


def build_tiny_model(out_dir: str, texts: Iterable[str] | None = None, seed: int = 0,
                     vocab_size: int = 512, architecture: str = "olmo", *, head: str = "ForCausalLM",
                     **config_overrides) -> str:
    """Write a randomly initialised tiny model of `architecture` (default: the tiny OLMo, a key of
    TINY_ARCHITECTURES) plus its tokenizer to `out_dir`; returns the path. `head` is the model class's
    suffix: ForCausalLM, or ForSequenceClassification (`build_tiny_reward_model`)."""
    import torch
    import transformers

    if architecture not in TINY_ARCHITECTURES:
        raise ValueError(f"unknown tiny architecture {architecture!r}; known: {sorted(TINY_ARCHITECTURES)}")
    arch = TINY_ARCHITECTURES[architecture]
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, conventions=arch.tokenizer)
    config = tiny_config(architecture, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                         **config_overrides)
    torch.manual_seed(seed)
    model = getattr(transformers, arch.model_class.replace("ForCausalLM", head))(config)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_tiny_reward_model(out_dir: str, texts: Iterable[str] | None = None, seed: int = 0,
                            vocab_size: int = 512, architecture: str = "llama") -> str:
    """A randomly initialised tiny reward model: `architecture`'s sequence classifier with one output
    (what a hub reward model is), plus its tokenizer, in `out_dir`; returns the path."""
    return build_tiny_model(out_dir, texts, seed, vocab_size, architecture, head="ForSequenceClassification",
                            num_labels=1)


# ------------------------------------------------------------------------- the families' architectures
@dataclass(frozen=True)
class TinyArchitecture:
    """A tiny stand-in of one family's model class and tokenizer (docs/families.md §3)."""

    model_type: str  # config.model_type, the key of trainers.methods' LoRA target tables
    model_class: str  # the transformers class the hub checkpoints load as
    stands_for: str  # the hub family it imitates
    tokenizer: TokenizerConventions
    tie_word_embeddings: bool  # the default of build_tiny_model; tests may override it


TINY_ARCHITECTURES: dict[str, TinyArchitecture] = {
    # Untied, as the tiny OLMo always was (golden losses depend on it); OLMo-1B itself ties: pass
    # tie_word_embeddings=True for a faithful one.
    "olmo": TinyArchitecture("olmo", "OlmoForCausalLM", "allenai/OLMo-1B-hf", TokenizerConventions(), False),
    "olmo2": TinyArchitecture("olmo2", "Olmo2ForCausalLM", "allenai/OLMo-2-0425-1B", TokenizerConventions(), False),
    # Pythia: eos = bos = "<|endoftext|>" with id 0, no pad token, nothing added.
    "gpt_neox": TinyArchitecture("gpt_neox", "GPTNeoXForCausalLM", "EleutherAI/pythia-*", TokenizerConventions(
        specials=(EOS_TOKEN,), pad=None, bos=EOS_TOKEN), False),
    # Llama-style: "<s>" added before every text, "</s>" as eos, no pad; tied (SmolLM2 and Llama-3.2 tie).
    "llama": TinyArchitecture("llama", "LlamaForCausalLM", "Llama-style (SmolLM2, LLM360/Amber)", TokenizerConventions(
        specials=(BOS_TOKEN, "</s>"), pad=None, eos="</s>", bos=BOS_TOKEN, adds_bos=True), True),
}


def tiny_config(architecture: str, vocab_size: int, pad_token_id: int | None, eos_token_id: int,
                bos_token_id: int | None, hidden: int = 64, layers: int = 2, heads: int = 4,
                intermediate: int = 128, max_positions: int = 1024, **overrides: Any):
    """A config of `architecture` (a key of TINY_ARCHITECTURES) small enough to train on 2 CPU cores."""
    import transformers

    arch = TINY_ARCHITECTURES[architecture]
    common: dict[str, Any] = dict(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, max_position_embeddings=max_positions, pad_token_id=pad_token_id,
        eos_token_id=eos_token_id, bos_token_id=bos_token_id, tie_word_embeddings=arch.tie_word_embeddings)
    if architecture == "olmo":
        return tiny_olmo_config(vocab_size, hidden, layers, heads, intermediate, max_positions,
                                pad_token_id=pad_token_id, eos_token_id=eos_token_id, **overrides)
    if architecture == "gpt_neox":  # Pythia's shape: parallel residual, rotary on a quarter of each head
        common.update(use_parallel_residual=True, rope_parameters={
            "rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25})
    else:
        common["num_key_value_heads"] = heads
    config_class = {"olmo2": transformers.Olmo2Config, "gpt_neox": transformers.GPTNeoXConfig,
                    "llama": transformers.LlamaConfig}[architecture]
    return config_class(**{**common, **overrides})
