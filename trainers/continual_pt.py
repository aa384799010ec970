"""Continual pre-training: causal-LM loss on every token of a raw-text corpus (docs/continual_pt.md).

The objective the SFT loop (`trainers/sft.py`) runs for `kind: continual_pt`; it differs from SFT in its
data and its validation only (the batches, the loss and the loop are SFT's):

- every document of the corpus's train split (`ptft.tasks.corpus_documents`) is tokenized as
  `leading specials + text + eos`; a document longer than `max_length` is cut into `max_length` chunks;
- with `replay`, a seeded draw of the replay corpus's train documents joins them, so that replayed
  documents are `ratio` of all training documents;
- chunks are packed first-fit in a seeded order (`trainers.collate.plan_rows`), always: positions restart
  per document and each document's first token gets label -100 (`trainers.collate.collate`), so no
  attention and no loss crosses documents; every other token is a target (no prompt masking);
- the learning rate's re-warmup is TrainConfig's warmup (`warmup_ratio`) on the usual linear schedule:
  nothing extra;
- validation: `val_loss` (token-mean loss on the new corpus's held-out documents, what the lr search
  selects on), `val_ppl = exp(val_loss)`, `old_ppl` on the old domain's held-out documents (`old_corpus`, else
  the replay corpus) and `ppl/<name>` per `eval_corpora` entry.

This module does not import `trainers/objectives.py` (which imports it lazily, in `objective_for`): the
floors test counts lazy imports in its no-loop rule, so the objective is the same duck type as
`objectives.Objective` and returns `CorpusTrainingData`, the same fields as `objectives.TrainingData`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ptft.tasks import CorpusDocuments, corpus_documents
from ptft.tasks.corpora import documents_checksum
from trainers.collate import Batch, collate, plan_rows
from trainers.examples import IGNORE_INDEX, ExampleSet, TokenizedExample, leading_special_ids
from trainers.loss import held_out_rows_loss, loss_sum_and_count

# The tokenization rule (specials + text + eos, max_length chunks, packed): the manifest's template_version.
DATA_VERSION = "continual_pt/1"


@dataclass(frozen=True)
class HeldOut:
    """Held-out chunks per corpus: the new domain's (val_loss), the old domain's (old_ppl), the others."""

    new: str
    old: str | None
    sets: dict[str, ExampleSet]  # corpus -> its held-out chunks, new corpus first

    @property
    def counts(self) -> dict[str, int]:
        return self.sets[self.new].counts


BEFORE_FILE = "before_metrics.json"  # the input model's held-out metrics, in the run's output folder


@dataclass(frozen=True)
class CorpusTrainingData:
    """What `load_data` returns: `objectives.TrainingData`'s fields (the loop and the manifest read them)."""

    rows: list[list[TokenizedExample]]  # each row the chunks packed into one sequence
    val: HeldOut
    train: ExampleSet  # every training chunk, new and replayed; its counts go into the manifest
    checksum: str  # over the training documents in order (new, then replayed)
    template_version: str
    extra: dict[str, Any] = field(default_factory=dict)  # corpora, replay, held-out provenance


class ContinualPtObjective:
    """`kind: continual_pt` (see the module docstring); `config` is a `ContinualPtConfig`."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def preflight_data(self, dataset: str, source: str, config: Any) -> None:
        """Read every corpus a run reads (training and held-out documents) as the worker will, before any
        Ray resource: a bad row raises `tasks.DataError` naming file, line and field."""
        from ptft.tasks.corpora import corpus_documents

        for name in config.corpora(dataset):
            corpus_documents(name, "train", source)
            corpus_documents(name, "validation", source)

    def load_data(self, job: Any, tokenizer: Any) -> CorpusTrainingData:
        from trainers.adapters import with_virtual_prefix

        cfg, pt = job.config, self.config
        virtual = job.method.prefix_length  # prompt methods: virtual tokens count against max_length
        if virtual >= cfg.max_length - 1:
            raise ValueError(f"method {job.method.label}: {virtual} virtual tokens leave no room in max_length "
                             f"{cfg.max_length}")
        width = cfg.max_length - virtual
        new = corpus_documents(job.dataset, "train", job.data_source, job.data_limit)
        documents = [(f"{new.corpus}/{i}", text) for i, text in enumerate(new.texts)]
        replay_extra = None
        if pt.replay is not None:
            pool = corpus_documents(pt.replay.corpus, "train", job.data_source)
            picks = draw_replay(len(pool.texts), replay_count(len(new.texts), pt.replay.ratio), cfg.seed)
            replayed = [pool.texts[i] for i in picks]
            documents += [(f"replay:{pool.corpus}/{i}", pool.texts[i]) for i in picks]
            replay_extra = {"corpus": pool.corpus, "ratio": pt.replay.ratio, "pool": _provenance(pool),
                            "documents": len(picks), "distinct": len(set(picks)),
                            "checksum": documents_checksum(replayed)}
        train = with_virtual_prefix(tokenize_documents(documents, tokenizer, width), virtual)
        plan = plan_rows([len(c) for c in train.examples], cfg.max_length, packing=True, seed=cfg.seed)
        rows = [[train.examples[i] for i in row] for row in plan]
        counts = train.counts | {"new_documents": len(new.texts),
                                 "replay_documents": replay_extra["documents"] if replay_extra else 0}
        if replay_extra is not None:
            replay_extra["tokens"] = sum(len(c) for c in train.examples if c.example_id.startswith("replay:"))

        held_names = [job.dataset, *([pt.old_domain()] if pt.old_domain() else []), *pt.eval_corpora]
        sets: dict[str, ExampleSet] = {}
        held_out: dict[str, Any] = {}
        for name in dict.fromkeys(held_names):  # the first val_size held-out documents of each
            docs = corpus_documents(name, "validation", job.data_source, limit=cfg.val_size)
            chunks = tokenize_documents([(f"{name}/val/{i}", t) for i, t in enumerate(docs.texts)], tokenizer, width)
            sets[name] = with_virtual_prefix(chunks, virtual)
            held_out[name] = _provenance(docs) | chunks.counts
        extra = {"objective": "continual_pt", "corpus": _provenance(new), "replay": replay_extra,
                 "held_out": held_out}
        return CorpusTrainingData(rows, HeldOut(job.dataset, pt.old_domain(), sets),
                                  ExampleSet(train.examples, counts),
                                  documents_checksum([text for _, text in documents]), DATA_VERSION, extra)

    def prepare(self, engine: Any, data: CorpusTrainingData, job: Any) -> None:
        """The held-out metrics of the stage's input model, before the first step, so the manifest has
        both ends ("learned the new domain", "forgot the old one"); stored with the run and read back on
        resume, never measured on a partially trained model. The schedule's warmup is the re-warmup."""
        import torch.distributed as dist

        from ptft.core import storage

        path = storage.join(job.output_dir, BEFORE_FILE)
        if storage.exists(path):
            data.extra["before"] = storage.read_json(path)
            return
        if engine.global_steps > 0:  # resumed without the file: leave it out rather than measure the wrong model
            return
        # Right padding is never attended to nor scored: any id in the vocabulary will do.
        before = self.validate(engine, data, 0, job.config.batch_size)
        data.extra["before"] = before
        if (dist.get_rank() if dist.is_initialized() else 0) == 0:
            storage.atomic_write_json(path, before)
        if dist.is_initialized():
            dist.barrier()

    def collate(self, rows: list[list[TokenizedExample]], pad_id: int, multiple: int = 1) -> Batch:
        return collate(rows, pad_id, multiple)

    def loss(self, engine: Any, batch: Batch) -> tuple[Any, Any]:
        return loss_sum_and_count(engine, batch)

    def validate(self, engine: Any, data: CorpusTrainingData, pad_id: int, batch_size: int) -> dict[str, Any]:
        """val_loss and val_ppl on the new corpus, old_ppl on the old domain, ppl/<name> on the others."""
        losses = {name: held_out_loss(engine, chunks.examples, pad_id, batch_size)
                  for name, chunks in data.val.sets.items()}
        metrics: dict[str, Any] = {"val_loss": losses[data.val.new], "val_ppl": perplexity(losses[data.val.new])}
        for name, loss in losses.items():
            if name == data.val.new:
                continue
            if name == data.val.old:
                metrics |= {"old_loss": loss, "old_ppl": perplexity(loss)}
            if name in self.config.eval_corpora:
                metrics[f"ppl/{name}"] = perplexity(loss)
        return metrics


def tokenize_documents(documents: Sequence[tuple[str, str]], tokenizer: Any, max_length: int) -> ExampleSet:
    """(id, text) documents -> chunks of at most `max_length` tokens, every token a target but the first.

    A document is `leading specials + text + eos` (the tokenizer's own specials, as `tokenizer(text)` adds
    them: Llama's BOS, none for OLMo and Pythia); one longer than `max_length` is cut into consecutive
    chunks, each a sequence of its own whose first token has no context, so is not a target. A chunk of one
    token has no target and is dropped (counted).
    """
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise ValueError("the tokenizer has no eos token; continual pre-training ends every document with eos")
    prefix = list(leading_special_ids(tokenizer))
    encoded = tokenizer([text for _, text in documents], add_special_tokens=False)["input_ids"] if documents else []
    chunks: list[TokenizedExample] = []
    split = dropped = 0
    for (doc_id, _), ids in zip(documents, encoded, strict=True):
        ids = [*prefix, *ids, eos_id]
        pieces = [ids[start:start + max_length] for start in range(0, len(ids), max_length)]
        split += len(pieces) > 1
        for n, piece in enumerate(pieces):
            if len(piece) < 2:
                dropped += 1
                continue
            chunks.append(TokenizedExample(f"{doc_id}#{n}", tuple(piece), (IGNORE_INDEX, *piece[1:])))
    counts = {"documents": len(documents), "chunks": len(chunks), "split_documents": split,
              "dropped_no_target": dropped, "tokens": sum(len(c) for c in chunks),
              "target_tokens": sum(c.num_targets for c in chunks)}
    return ExampleSet(tuple(chunks), counts)


def replay_count(new_documents: int, ratio: float) -> int:
    """Replayed documents so that they are `ratio` of all training documents: r / (n + r) = ratio."""
    return max(1, round(new_documents * ratio / (1.0 - ratio)))


def draw_replay(pool_size: int, count: int, seed: int) -> list[int]:
    """`count` indices into the replay pool: a seeded shuffle of it, another after each pass when count is
    larger than the pool (repeats only then)."""
    rng = random.Random(f"ptft-replay/{seed}")  # str seeds are stable across runs and platforms
    picks: list[int] = []
    while len(picks) < count:
        order = list(range(pool_size))
        rng.shuffle(order)
        picks += order[:count - len(picks)]
    return picks


def held_out_loss(engine: Any, chunks: Sequence[TokenizedExample], pad_id: int, batch_size: int) -> float | None:
    """Token-mean loss over held-out chunks, packed into rows of the longest chunk's width (collective; None
    with no chunks). Packing changes no number (documents never see each other;
    `tests/trainers/test_continual_pt.py` checks it) and saves forward passes."""
    if not chunks:
        return None
    width = max(len(c) for c in chunks)
    rows = [[chunks[i] for i in row] for row in plan_rows([len(c) for c in chunks], width, packing=True, seed=0)]
    return held_out_rows_loss(engine, rows, pad_id, batch_size)


def perplexity(loss: float | None) -> float | None:
    """exp(token-mean loss); inf past what a float holds."""
    if loss is None:
        return None
    return math.exp(loss) if loss < 709.0 else math.inf


def _provenance(docs: CorpusDocuments) -> dict[str, Any]:
    return {"name": docs.corpus, "split": docs.split, "checksum": docs.checksum, "origin": docs.origin, **docs.counts}
