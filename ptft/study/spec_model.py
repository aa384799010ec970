"""The spec's `model:` / `models:` entries: a pre-trained model, its family and its checkpoints."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
)

from ptft.study.checkpoints import (
    CheckpointRef,
    Family,
    RevisionResolver,
    family_for,
    parse_checkpoint,
    pattern_family,
)
from ptft.study.spec_fields import STRICT


class ModelSpec(BaseModel):
    model_config = STRICT

    id: str = Field(description="Hub id (allenai/OLMo-1B-hf) or a local model directory.")
    name: str | None = Field(None, min_length=1, description=(
        "The model family's name in results and reports (base_model); default: id. Give one when id is a "
        "local folder of one checkpoint, so rows of every checkpoint do not read as that one."))
    # The family fields come before `checkpoints`: pydantic validates in this order, so the checkpoints'
    # validator can check each stage and ingredient against the family (docs/families.md).
    checkpoint_family: str | None = Field(None, description=(
        "How the hub names its checkpoints: olmo, olmo2, olmo3, pythia, smollm2; default: detected from id "
        "(docs/families.md)."))
    revision_pattern: str | None = Field(None, description=(
        "Any other naming: a format string with {step} ('ckpt_{step:03d}') or a regex with (?P<step>...)."))
    tokens_per_step: int | None = Field(None, ge=1, description=(
        "Tokens per pre-training step (a fixed batch): tokens seen = step x this, for curves."))
    checkpoints: list[Any] = Field(
        default_factory=lambda: ["main"],
        description="Steps (1000), 'main', explicit revisions, local dirs, or {path|revision|step, name}.",
    )
    num_params: int | None = Field(None, ge=1, description="Parameter count for the cost estimate.")

    @field_validator("checkpoint_family")
    @classmethod
    def _known_family(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            family_for(info.data.get("id", ""), declared=value)  # ValueError: unknown, with what is known
        return value

    @field_validator("revision_pattern")
    @classmethod
    def _pattern(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            if info.data.get("checkpoint_family") is not None:
                raise ValueError("give either checkpoint_family or revision_pattern, not both")
            pattern_family(value)
        return value

    @field_validator("checkpoints")
    @classmethod
    def _checkpoints(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        if not value:
            raise ValueError("needs at least one checkpoint")
        refs = []
        for i, item in enumerate(value):
            try:
                refs.append(parse_checkpoint(item))
            except ValueError as err:
                raise ValueError(f"[{i}]: {err}") from None
        labels = [r.label for r in refs]
        dupes = sorted({label for label in labels if labels.count(label) > 1})
        if dupes:
            raise ValueError(f"duplicate checkpoints {dupes}")
        family_fields = ("id", "checkpoint_family", "revision_pattern", "tokens_per_step")
        if all(key in info.data for key in family_fields):  # a bad family field is reported on its own
            family = family_for(info.data["id"], info.data["checkpoint_family"], info.data["revision_pattern"],
                                info.data["tokens_per_step"])
            for i, ref in enumerate(refs):
                try:
                    family.check_stage(ref.stage, ref.ingredient)
                except ValueError as err:
                    raise ValueError(f"[{i}]: {err}") from None
        return value

    @property
    def family(self) -> str:
        """What results call the pre-trained model (`base_model`)."""
        return self.name or self.id

    def checkpoint_refs(self) -> list[CheckpointRef]:
        return [parse_checkpoint(item) for item in self.checkpoints]

    def checkpoint_naming(self) -> Family:
        """How this model's hub names its checkpoints (the declared family, a pattern, or detected)."""
        return family_for(self.id, self.checkpoint_family, self.revision_pattern, self.tokens_per_step)

    def resolve(self, resolver: RevisionResolver, ref: CheckpointRef, base_dir: str) -> tuple[str, str | None]:
        """(path_or_id, revision) of one of this model's checkpoints, in its own family's naming."""
        return resolver.resolve(self.id, ref, base_dir, family=self.checkpoint_naming())

    def tokens_seen(self, resolver: RevisionResolver, ref: CheckpointRef, revision: str | None) -> float | None:
        """Billions of tokens seen at `ref` where the family says (its revision's name, or a fixed batch)."""
        return resolver.tokens_seen(self.id, ref, revision, family=self.checkpoint_naming())


def qualified_label(model_name: str | None, label: str) -> str:
    """A checkpoint's label made unique across the spec's models: in a spec of one `model:` the label alone
    (today's folder names), in `models:` prefixed with the model's name (two models may share a label)."""
    return label if model_name is None else f"{model_name}-{label}"


