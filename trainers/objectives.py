"""What a training run optimises: its data, its loss and its validation (one `Objective` per kind).

The loop in `trainers/sft.py` is the same for every kind — DeepSpeed, the sampler, resume, reports,
checkpoints, export — and asks its objective for the four things that differ:

- `load_data(job, tokenizer)`: the training rows (what one sampler index names) and the held-out data;
- `collate(rows, pad_id, multiple)`: one micro-batch (`.to(device)`, `example_lengths`,
  `padded_tokens`, `target_tokens`, which the throughput meter reads);
- `loss(engine, batch)`: the summed loss and the count it is averaged over;
- `validate(engine, data, pad_id, batch_size)`: held-out metrics, always with `val_loss` (the metric
  the lr search selects on), collective across ranks;

plus `prepare(engine, data, job)` before the first step (a no-op for SFT).

Kinds: `sft` (completion-only loss on rendered task examples: the study's recipe), `continual_pt`
(causal-LM loss on every token of a raw-text corpus) and `dpo` (preference pairs). Their configs are
typed values in `ObjectiveConfig`, carried by the `TrainJob`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ptft.core.identity import defines


class SftConfig(BaseModel):
    """Supervised fine-tuning on a task's rendered examples, loss on the completion only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["sft"] = defines("sft", description="Supervised fine-tuning.")


class DpoConfig(BaseModel):
    """Direct preference optimisation on a preference set (`dataset`), against the stage's input model as the
    reference (docs/dpo.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["dpo"] = defines("dpo", description="Preference tuning (DPO, Rafailov et al. 2023).")
    beta: float = defines(0.1, gt=0.0, description="Strength of the pull towards the reference (the KL weight).")
    loss: Literal["sigmoid", "ipo"] = defines(
        "sigmoid", description="sigmoid: DPO's -log sigmoid(beta x margin); ipo: (margin per token - 1/(2 beta))^2.")
    bad_rows: Literal["raise", "skip"] = defines(
        "raise", description="A pair that cannot train (identical responses, an empty one, a prompt past "
        "max_length): raise names it; skip counts it in the manifest.")


class ReplayConfig(BaseModel):
    """Old-domain documents mixed into continual pre-training (docs/continual_pt.md §3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corpus: str = defines(description="Registered corpus (ptft.tasks.corpora) whose train documents are replayed.")
    ratio: float = defines(gt=0.0, lt=1.0, description="Fraction of the training documents drawn from the replay "
                                                       "corpus (a seeded draw, TrainConfig.seed).")


class ContinualPtConfig(BaseModel):
    """Causal-LM loss on every token of the job's corpus (`dataset`), packed across documents
    (docs/continual_pt.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["continual_pt"] = defines("continual_pt", description="Continual pre-training on raw text.")
    replay: ReplayConfig | None = defines(None, description="Replay of an older corpus; null: the new corpus only.")
    old_corpus: str | None = defines(
        None, description="Corpus whose held-out perplexity is reported as old_ppl; null: the replay corpus, if any.")
    eval_corpora: tuple[str, ...] = defines(
        (), description="More corpora whose held-out perplexity is reported as ppl/<name>.")

    def old_domain(self) -> str | None:
        """The corpus behind old_ppl: `old_corpus`, else the replay corpus, else none."""
        return self.old_corpus or (self.replay.corpus if self.replay else None)

    def corpora(self, dataset: str) -> tuple[str, ...]:
        """Every corpus a run with this config reads (the new one first), for checks before anything runs."""
        names = [dataset, *([self.replay.corpus] if self.replay else []), *filter(None, [self.old_domain()]),
                 *self.eval_corpora]
        return tuple(dict.fromkeys(names))


ObjectiveConfig = Annotated[SftConfig | ContinualPtConfig | DpoConfig, Field(discriminator="kind")]


@dataclass(frozen=True)
class TrainingData:
    """What `load_data` returns: the rows the sampler indexes, the held-out data, and provenance."""

    rows: list[Any]  # SFT: each row a list of TokenizedExample (several when packed)
    val: Any  # SFT: an ExampleSet
    train: Any  # SFT: an ExampleSet (its counts go into the manifest)
    checksum: str
    template_version: str
    extra: dict[str, Any] = field(default_factory=dict)  # objective-specific provenance for the manifest


class Objective:
    """The SFT objective; other kinds override what differs."""

    def load_data(self, job: Any, tokenizer: Any) -> TrainingData:
        from ptft import tasks
        from trainers.adapters import with_virtual_prefix
        from trainers.collate import plan_rows
        from trainers.examples import build_examples, split_validation

        cfg = job.config
        rendered = tasks.training_set(job.dataset, job.fmt, job.data_mode, source=job.data_source,
                                      limit=job.data_limit)
        train_rendered, val_rendered = split_validation(rendered.examples, cfg.val_size, cfg.seed)
        # Prompt methods: each example's virtual tokens count against max_length too.
        virtual = job.method.prefix_length
        if virtual >= cfg.max_length:
            raise ValueError(f"method {job.method.label}: {virtual} virtual tokens leave no room in max_length "
                             f"{cfg.max_length}")
        train = with_virtual_prefix(build_examples(train_rendered, tokenizer, cfg.max_length - virtual), virtual)
        val = with_virtual_prefix(build_examples(val_rendered, tokenizer, cfg.max_length - virtual), virtual)
        plan = plan_rows([len(e) for e in train.examples], cfg.max_length, cfg.packing, cfg.seed)
        rows = [[train.examples[i] for i in row] for row in plan]
        return TrainingData(rows, val, train, rendered.checksum,
                            tasks.template_version(job.dataset, job.fmt, job.data_mode))

    def prepare(self, engine: Any, data: TrainingData, job: Any) -> None:
        """Work before the first step (and again on resume); SFT has none."""

    def collate(self, rows: list[Any], pad_id: int, multiple: int = 1) -> Any:
        from trainers.collate import collate

        return collate(rows, pad_id, multiple)

    def loss(self, engine: Any, batch: Any) -> tuple[Any, Any]:
        from trainers.loss import loss_sum_and_count

        return loss_sum_and_count(engine, batch)

    def validate(self, engine: Any, data: TrainingData, pad_id: int, batch_size: int) -> dict[str, Any]:
        return {"val_loss": validation_loss(engine, data.val.examples, pad_id, batch_size)}


def objective_for(config: Any) -> Objective:
    """The implementation of an `ObjectiveConfig`."""
    if config.kind == "sft":
        return Objective()
    if config.kind == "continual_pt":  # lazily: SFT runs never import it
        from trainers.continual_pt import ContinualPtObjective

        return ContinualPtObjective(config)
    if config.kind == "dpo":  # lazily, like continual_pt
        from trainers.dpo import DpoObjective

        return DpoObjective(config)
    raise ValueError(f"unknown objective {config.kind!r}")


def validation_loss(engine: Any, examples: tuple[Any, ...], pad_id: int, batch_size: int) -> float | None:
    """Token-mean loss over the validation examples, one per row (collective; None if no examples)."""
    from trainers.loss import held_out_rows_loss

    return held_out_rows_loss(engine, [[e] for e in examples], pad_id, batch_size)
