"""Applying a fine-tuning method to a model with peft, and the pieces each method needs (docs/methods.md).

- full: the model as loaded; every parameter trains.
- lora: `peft.get_peft_model` with a `LoraConfig`; the forward pass is the model's own.
- prompt_tuning / p_tuning: peft builds and saves the prompt encoder, but the forward pass is ours
  (`VirtualTokenLM`): every training example carries `virtual_tokens` placeholder ids (`VIRTUAL_ID`)
  at positions 0..n-1 ahead of its own tokens, and the wrapper puts the learned embedding of virtual
  token p where position p holds a placeholder. peft's own forward prepends the prompt once per row,
  which would leave every packed example after the first without it; ours gives each example its prompt,
  with positions that restart per example exactly as peft's prepend gives a single example.
"""

from __future__ import annotations

from typing import Any

import torch

from trainers.examples import IGNORE_INDEX, ExampleSet, TokenizedExample
from trainers.methods import LoraMethod, PromptTuningMethod, PTuningMethod

# A placeholder id for a virtual-token position (never a vocabulary id).
VIRTUAL_ID = -1


def apply_method(model: Any, method: Any, tokenizer_path: str | None = None,
                 revision: str | None = None) -> Any:
    """The model to train for `method`: the model itself (full), or a peft model with frozen base weights."""
    if method.trains_all_weights:
        return model
    import peft

    if isinstance(method, LoraMethod):
        config = peft.LoraConfig(
            r=method.r, lora_alpha=method.alpha, lora_dropout=method.dropout,
            target_modules=method.resolved_targets(model.config.model_type), use_rslora=method.rslora,
            bias="none", task_type="CAUSAL_LM", revision=revision)
        return peft.get_peft_model(model, config, autocast_adapter_dtype=False)
    if isinstance(method, PromptTuningMethod):
        init = {"text": peft.PromptTuningInit.TEXT, "vocab": peft.PromptTuningInit.SAMPLE_VOCAB,
                "random": peft.PromptTuningInit.RANDOM}[method.init]
        extra = {"prompt_tuning_init_text": method.text, "tokenizer_name_or_path": tokenizer_path,
                 "tokenizer_kwargs": {"revision": revision} if revision else None} if method.init == "text" else {}
        config = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=method.virtual_tokens,
                                         prompt_tuning_init=init, revision=revision, **extra)
        return VirtualTokenLM(peft.get_peft_model(model, config, autocast_adapter_dtype=False))
    if isinstance(method, PTuningMethod):
        kind = {"mlp": peft.PromptEncoderReparameterizationType.MLP,
                "lstm": peft.PromptEncoderReparameterizationType.LSTM}[method.encoder]
        config = peft.PromptEncoderConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=method.virtual_tokens, encoder_reparameterization_type=kind,
            encoder_hidden_size=method.encoder_hidden, encoder_num_layers=method.encoder_layers,
            encoder_dropout=method.encoder_dropout, revision=revision)
        return VirtualTokenLM(peft.get_peft_model(model, config, autocast_adapter_dtype=False))
    raise ValueError(f"unknown method {method!r}")


class VirtualTokenLM(torch.nn.Module):
    """A prompt-learning peft model whose inputs carry `VIRTUAL_ID` placeholders (see the module doc)."""

    def __init__(self, peft_model: Any) -> None:
        super().__init__()
        self.peft_model = peft_model
        self.config = peft_model.get_base_model().config
        self.virtual_tokens = peft_model.active_peft_config.num_virtual_tokens

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, use_cache: bool = False, **kwargs: Any):
        base = self.peft_model.get_base_model()
        embed = base.get_input_embeddings()
        placeholder = input_ids == VIRTUAL_ID
        embeds = embed(input_ids.masked_fill(placeholder, 0))
        prompts = self.peft_model.get_prompt(batch_size=1)[0].to(embeds.dtype)  # [n, hidden]
        # Position p of a placeholder names its virtual token (each example's prompt starts at 0).
        gathered = prompts[position_ids.clamp(max=self.virtual_tokens - 1)]
        embeds = torch.where(placeholder[..., None], gathered, embeds)
        return base(inputs_embeds=embeds, position_ids=position_ids, use_cache=use_cache, **kwargs)

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        self.peft_model.get_base_model().gradient_checkpointing_enable(**kwargs)


def peft_model_of(model: Any) -> Any | None:
    """The peft model inside what `apply_method` returned, or None for full fine-tuning."""
    if isinstance(model, VirtualTokenLM):
        return model.peft_model
    import peft

    return model if isinstance(model, peft.PeftModel) else None


def with_virtual_prefix(examples: ExampleSet, virtual_tokens: int) -> ExampleSet:
    """Every example with `virtual_tokens` placeholder positions (label ignored) ahead of its tokens."""
    if virtual_tokens == 0:
        return examples
    prefix_ids, prefix_labels = (VIRTUAL_ID,) * virtual_tokens, (IGNORE_INDEX,) * virtual_tokens
    return ExampleSet(tuple(TokenizedExample(e.example_id, prefix_ids + e.input_ids, prefix_labels + e.labels)
                            for e in examples.examples), examples.counts)


def parameter_counts(model: Any) -> dict[str, int]:
    """Trainable and total parameters (ZeRO-3 partitioned parameters counted whole)."""
    def numel(p: torch.nn.Parameter) -> int:
        return int(p.ds_numel) if hasattr(p, "ds_numel") else p.numel()

    params = list(model.parameters())
    return {"trainable": sum(numel(p) for p in params if p.requires_grad), "total": sum(numel(p) for p in params)}


def trainable_parameters(model: Any) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def missing_target_modules(model_config: Any, method: LoraMethod) -> tuple[list[str], list[str]]:
    """(target names the architecture lacks, the linear layer names it has), from its config alone.

    The model is built on the meta device (no weights, no memory); peft matches a target name against the
    end of each module's dotted name, as here.
    """
    from transformers import AutoModelForCausalLM

    targets = method.resolved_targets(model_config.model_type)  # ValueError: no preset for this architecture
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config)
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                     if isinstance(module, torch.nn.Linear) and name})
    if targets == "all-linear":
        return [], linear
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    return missing, linear
