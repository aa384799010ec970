"""Fine-tuning methods: full fine-tuning, LoRA, prompt tuning and P-tuning (docs/methods.md).

A method is a typed value (`Method`, one class per name, every field declared `defines(...)`), so it is
part of the cell it trains and crosses process boundaries inside the `TrainJob`. This module is free of
torch and peft imports; `trainers.adapters` applies a method to a model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ptft.core.identity import defines, identity_of, setting

# Named LoRA target sets per architecture (config.model_type). "all-linear" is peft's own rule (every
# linear layer but the output head) and needs no table.
ATTENTION_MODULES: dict[str, tuple[str, ...]] = {
    "olmo": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "olmo2": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "olmo3": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "gpt_neox": ("query_key_value", "dense"),
}
MLP_MODULES: dict[str, tuple[str, ...]] = {
    "olmo": ("gate_proj", "up_proj", "down_proj"),
    "olmo2": ("gate_proj", "up_proj", "down_proj"),
    "olmo3": ("gate_proj", "up_proj", "down_proj"),
    "llama": ("gate_proj", "up_proj", "down_proj"),
    "gpt_neox": ("dense_h_to_4h", "dense_4h_to_h"),
}
TARGET_PRESETS = ("all-linear", "attention")

DEFAULT_INIT_TEXT = "Read the input and give the answer the task asks for."


class _Method(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # How tables and trial names call the method; it names, it does not define (ids ignore it).
    custom_label: str | None = setting(None, alias="label", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$",
                                       description="Name in tables and trial names (default: e.g. lora-r16).")

    @property
    def label(self) -> str:
        """Short readable name used in trial names, records and tables."""
        return self.custom_label or self.default_label()

    def default_label(self) -> str:
        return self.name  # type: ignore[attr-defined]

    @property
    def trains_all_weights(self) -> bool:
        return False

    @property
    def prefix_length(self) -> int:
        """Virtual positions prepended to every sequence (prompt methods); 0 for weight methods."""
        return getattr(self, "virtual_tokens", 0)

    @property
    def mergeable(self) -> bool:
        """Whether the trained model can be exported as a plain full model."""
        return False

    def identity(self) -> dict[str, Any]:
        return identity_of(self)


class FullMethod(_Method):
    """Every parameter trains (the study's recipe)."""

    name: Literal["full"] = defines("full", description="Full fine-tuning.")

    @property
    def trains_all_weights(self) -> bool:
        return True

    @property
    def mergeable(self) -> bool:
        return True


class LoraMethod(_Method):
    """Low-rank adapters on the target linear layers (Hu et al. 2021); the base weights stay frozen."""

    name: Literal["lora"] = defines("lora", description="LoRA.")
    r: int = defines(16, ge=1, description="Rank of each adapter (r > 0).")
    alpha: float = defines(32.0, gt=0.0, description="Scaling numerator: updates are scaled by alpha / r.")
    dropout: float = defines(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter's input.")
    target_modules: str | tuple[str, ...] = defines(
        "all-linear", description="'all-linear' (every linear layer but the output head), 'attention' (the "
        "architecture's attention projections), or a list of module names (e.g. [q_proj, v_proj]).")
    rslora: bool = defines(False, description="Rank-stabilised scaling alpha / sqrt(r).")

    @field_validator("target_modules", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in TARGET_PRESETS:
                raise ValueError(f"target_modules {value!r} is not one of {list(TARGET_PRESETS)} or a list "
                                 "of module names")
            return value
        if isinstance(value, (list, tuple)):
            if not value or not all(isinstance(v, str) and v for v in value):
                raise ValueError("target_modules must be a non-empty list of module names")
            return tuple(value)
        raise ValueError(f"target_modules {value!r} is not a preset or a list of module names")

    def default_label(self) -> str:
        return f"lora-r{self.r}"

    @property
    def mergeable(self) -> bool:
        return True

    def resolved_targets(self, model_type: str) -> str | list[str]:
        """What peft's `target_modules` gets for an architecture; ValueError naming the field if unknown."""
        if self.target_modules == "all-linear":
            return "all-linear"
        if self.target_modules == "attention":
            if model_type not in ATTENTION_MODULES:
                raise ValueError(f"train.methods[lora].target_modules: no 'attention' preset for architecture "
                                 f"{model_type!r}; list the module names (known: {sorted(ATTENTION_MODULES)})")
            return list(ATTENTION_MODULES[model_type])
        return list(self.target_modules)


class PromptTuningMethod(_Method):
    """Learned virtual-token embeddings prepended to every sequence (Lester et al. 2021)."""

    name: Literal["prompt_tuning"] = defines("prompt_tuning", description="Prompt tuning.")
    virtual_tokens: int = defines(20, ge=1, description="Learned positions prepended to every example.")
    init: Literal["text", "random", "vocab"] = defines(
        "text", description="text: embeddings of init_text's tokens (repeated to length); vocab: embeddings of "
        "random vocabulary tokens; random: peft's random init.")
    init_text: str | None = defines(None, description=f"Text for init: text (default: {DEFAULT_INIT_TEXT!r}).")

    def default_label(self) -> str:
        return f"prompt-{self.virtual_tokens}"

    @property
    def text(self) -> str:
        return self.init_text or DEFAULT_INIT_TEXT


class PTuningMethod(_Method):
    """Virtual tokens produced by a small trained encoder (Liu et al. 2021, P-tuning)."""

    name: Literal["p_tuning"] = defines("p_tuning", description="P-tuning.")
    virtual_tokens: int = defines(20, ge=1, description="Learned positions prepended to every example.")
    encoder_hidden: int = defines(128, ge=1, description="Hidden size of the prompt encoder.")
    encoder: Literal["mlp", "lstm"] = defines("mlp", description="Prompt encoder reparameterisation.")
    encoder_layers: int = defines(2, ge=1, description="Layers of the prompt encoder (peft uses 2 for MLP).")
    encoder_dropout: float = defines(0.0, ge=0.0, lt=1.0, description="Dropout inside the prompt encoder.")

    def default_label(self) -> str:
        return f"ptuning-{self.virtual_tokens}"


Method = Annotated[FullMethod | LoraMethod | PromptTuningMethod | PTuningMethod, Field(discriminator="name")]
METHOD_NAMES = ("full", "lora", "prompt_tuning", "p_tuning")
PROMPT_METHODS = ("prompt_tuning", "p_tuning")


def is_full(method: Any) -> bool:
    return isinstance(method, FullMethod)
