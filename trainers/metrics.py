"""Throughput, model FLOPs utilisation (MFU) and peak memory.

Model FLOPs per example of length t (PaLM appendix B, nanoGPT's `estimate_mfu`): 6·N·t for the matmuls
of forward + backward, plus 12·L·H·Q·t² for attention (per token 12·L·H·Q·t, full t×t as PaLM counts it).
N counts every parameter but the input embedding (a lookup, not a matmul); the output head is a matmul
and is counted. Packed examples attend only within themselves, so each pays for its own t², and padding
pays nothing: MFU measures useful work. Recomputation (activation checkpointing) is not counted. With a
peft method the base weights are frozen (4·N·t: no weight gradients) and LoRA's adapters add 6 FLOPs per
adapter weight per token; prompt methods' virtual tokens are counted as tokens of the examples they precede.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import time
from dataclasses import dataclass, field

import torch

# Dense bf16 peak FLOP/s per device (no sparsity), matched by substring of the device name, first hit wins.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989e12),
    ("H100", 989e12),  # SXM; PCIe parts are slower: pass peak_flops
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A10G", 125e12),
)


def peak_flops_for(device_name: str) -> float | None:
    """Peak bf16 FLOP/s of a GPU by name (e.g. 'NVIDIA H100 80GB HBM3'); None when unknown."""
    for key, flops in PEAK_BF16_FLOPS:
        if key.lower() in device_name.lower():
            return flops
    return None


@dataclass(frozen=True)
class FlopsModel:
    """The numbers the FLOPs formula needs, read off a model."""

    matmul_params: int  # N
    layers: int  # L
    heads: int  # H
    head_dim: int  # Q
    frozen_base: bool = False  # peft methods: no weight gradients for the base (4N per token, not 6N)
    adapter_matmul_params: int = 0  # LoRA: adapter weights that are matmuls on every token (6 per token each)

    def for_method(self, frozen_base: bool, adapter_matmul_params: int) -> FlopsModel:
        return dataclasses.replace(self, frozen_base=frozen_base, adapter_matmul_params=adapter_matmul_params)

    @classmethod
    def from_model(cls, model: torch.nn.Module) -> FlopsModel:
        config = model.config
        total = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in model.parameters())
        embedding = model.get_input_embeddings().weight
        embedding_numel = embedding.ds_numel if hasattr(embedding, "ds_numel") else embedding.numel()
        head = model.get_output_embeddings()
        if head is not None and head.weight is embedding:  # tied (OLMo-1B): the one matrix is the head's matmul
            embedding_numel = 0
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(total - embedding_numel, config.num_hidden_layers, heads, head_dim)

    def example_flops(self, length: int) -> float:
        """Training FLOPs (forward + backward) of one example of `length` tokens.

        Frozen base weights skip their weight gradients: forward 2N plus input gradients 2N. Attention has
        no weights, so its forward and backward are counted in full either way.
        """
        base = (4.0 if self.frozen_base else 6.0) * self.matmul_params
        return ((base + 6.0 * self.adapter_matmul_params) * length
                + 12.0 * self.layers * self.heads * self.head_dim * length**2)


def peak_memory_bytes() -> int:
    """Peak memory of this worker: CUDA max allocated on GPU, max resident set size on CPU."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return int(torch.cuda.max_memory_allocated())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


@dataclass
class ThroughputMeter:
    """Accumulates tokens and FLOPs over timed windows (only training steps are timed, not eval/checkpoints)."""

    flops_model: FlopsModel
    seconds: float = 0.0
    real_tokens: int = 0
    padded_tokens: int = 0
    target_tokens: int = 0
    flops: float = 0.0
    _started: float | None = field(default=None, repr=False)

    def start(self) -> None:
        self._started = time.perf_counter()

    def stop(self) -> None:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None

    def add(self, example_lengths: list[int], padded_tokens: int, target_tokens: int) -> None:
        self.real_tokens += sum(example_lengths)
        self.padded_tokens += padded_tokens
        self.target_tokens += target_tokens
        self.flops += sum(self.flops_model.example_flops(t) for t in example_lengths)

    def reset(self) -> None:
        self.seconds, self.flops = 0.0, 0.0
        self.real_tokens = self.padded_tokens = self.target_tokens = 0


def throughput_metrics(real_tokens: float, padded_tokens: float, flops: float, seconds: float,
                       world_size: int, peak_flops: float | None) -> dict[str, float | None]:
    """tokens/s (all ranks together, without and with padding) and MFU (None without a peak)."""
    seconds = max(seconds, 1e-9)
    mfu = flops / (seconds * world_size * peak_flops) if peak_flops else None
    return {
        "tokens_per_s": real_tokens / seconds,
        "tokens_per_s_padded": padded_tokens / seconds,
        "tokens_per_s_per_device": real_tokens / seconds / world_size,
        "mfu": mfu,
    }
