"""DPO: preference pairs, the loss against stored reference log-probabilities, held-out metrics (docs/dpo.md).

The objective seam (`trainers/objectives.py`) runs it in the one loop of `trainers/sft.py`:

- `load_data`: a preference set (`ptft.tasks.preferences`) -> pairs held out for validation (`val_size`, as
  SFT) -> token ids: prompt untrained, each response trained and followed by eos (Tulu's tokenization,
  `trainers.examples.tokenize_rendered`). Every pair gets a `key`, its row in the reference table.
- `prepare` (before the first step, and again on resume): the reference log-probabilities of every pair,
  computed once from the stage's input model (with a peft method: the model with its adapter disabled)
  and written atomically to `<output_dir>/reference_logps.json`; a resumed run reads them back and never
  recomputes them from a partially trained model (docs/dpo.md §3). One model in memory, not two.
- `collate`: B pairs -> one batch of 2B right-padded sequences, chosen rows first (TRL's layout).
- `loss`: log pi(y|x) is the sum of the response tokens' log-probs; the per-pair loss is
  -log sigmoid(beta [(pi(y_w) - ref(y_w)) - (pi(y_l) - ref(y_l))]) (docs/dpo.md §2); returns (sum, pairs)
  so the loop's average is the mean over pairs.
- `validate`: held-out preference loss (`val_loss`, what the lr search selects on), reward accuracy, margin,
  the policy's chosen/rejected log-probs.

Forward passes in `prepare` and `validate` are collective: under ZeRO-3 every rank gathers parameters
together, so each rank runs the same number of batches and pads its share with weight-0 pairs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ptft.core import storage
from ptft.tasks import Rendered, Segment
from ptft.tasks.preferences import PreferencePair, PreferenceSet, preference_set
from trainers.collate import Batch, collate
from trainers.examples import (
    IGNORE_INDEX,
    TokenizedExample,
    leading_special_ids,
    split_validation,
    tokenize_rendered,
)
from trainers.loss import token_losses

log = logging.getLogger(__name__)

REFERENCE_FILE = "reference_logps.json"  # in the run's output folder (docs/dpo.md §3)
REFERENCE_VERSION = 1


# --------------------------------------------------------------------------------------- tokenization
@dataclass(frozen=True)
class TokenizedPair:
    """One pair as two training sequences sharing the prompt; `key` is its row of the reference table."""

    pair_id: str
    key: int
    chosen: TokenizedExample
    rejected: TokenizedExample


@dataclass(frozen=True)
class PairSet:
    """Tokenized pairs and the counts of what tokenization did (the manifest's `data.train` / `data.val`)."""

    pairs: tuple[TokenizedPair, ...]
    counts: dict[str, int]


def _sequence(pair: PreferencePair, response: str, tokenizer: Any, prefix: tuple[int, ...]) -> TokenizedExample:
    segments = (*pair.prompt, Segment(response, train=True, eos=True))
    example, _ = tokenize_rendered(Rendered(pair.pair_id, "", response, segments, None, ()), tokenizer,
                                   sys.maxsize, prefix)
    return example


def _prompt_length(example: TokenizedExample) -> int:
    return next((i for i, label in enumerate(example.labels) if label != IGNORE_INDEX), len(example))


def tokenize_pairs(pset: PreferenceSet, pairs: Sequence[PreferencePair], tokenizer: Any, max_length: int,
                   bad_rows: str = "raise", start_key: int = 0) -> PairSet:
    """Token ids of `pairs` (rows of `pset`), keys numbered from `start_key`.

    A sequence past `max_length` keeps its head (its response is cut, as SFT cuts) and is counted. A prompt
    that leaves no response token within `max_length`, or responses identical once cut, is a DataError
    naming the file, line and field (with `bad_rows="skip"`: counted and left out).
    """
    prefix = leading_special_ids(tokenizer)
    kept: list[TokenizedPair] = []
    truncated = skipped = 0
    for pair in pairs:
        chosen, rejected = (_sequence(pair, r, tokenizer, prefix) for r in (pair.chosen, pair.rejected))
        prompt = _prompt_length(chosen)
        problem = None
        if prompt >= max_length:
            problem = pset.error(pair, "prompt", f"{prompt} prompt tokens leave no room for a response in "
                                 f"max_length {max_length}", "raise max_length, or shorten or remove the row")
        cut = max(len(chosen), len(rejected)) > max_length
        chosen, rejected = (TokenizedExample(e.example_id, e.input_ids[:max_length], e.labels[:max_length])
                            for e in (chosen, rejected))
        if problem is None and chosen.input_ids == rejected.input_ids:
            problem = pset.error(pair, "rejected", f"identical to chosen within max_length {max_length}",
                                 "raise max_length, or remove the row")
        if problem is not None:
            if bad_rows == "raise":
                raise problem
            skipped += 1
            continue
        truncated += cut
        kept.append(TokenizedPair(pair.pair_id, start_key + len(kept), chosen, rejected))
    counts = {"pairs": len(pairs), "kept": len(kept), "truncated": truncated, "skipped_bad_rows": skipped,
              "tokens": sum(len(p.chosen) + len(p.rejected) for p in kept),
              "target_tokens": sum(p.chosen.num_targets + p.rejected.num_targets for p in kept)}
    return PairSet(tuple(kept), counts)


def check_prompt_lengths(dataset: str, source: str, tokenizer: Any, max_length: int, limit: int | None = None,
                         bad_rows: str = "raise") -> PairSet:
    """For the preflight: load, render and tokenize the whole train split as the worker will, so a bad row
    (identical responses, an empty one, a prompt past max_length) fails before anything runs."""
    pset = preference_set(dataset, source=source, limit=limit, on_error=bad_rows)
    return tokenize_pairs(pset, pset.pairs, tokenizer, max_length, bad_rows)


# ------------------------------------------------------------------------------------- batches and loss
@dataclass
class PairBatch:
    """B pairs as 2B sequences (chosen rows, then rejected rows); `weights` is 0 for a padding pair."""

    sequences: Batch
    keys: torch.Tensor  # [B], rows of the reference table
    weights: torch.Tensor  # [B]

    @property
    def example_lengths(self) -> list[int]:
        return self.sequences.example_lengths

    @property
    def padded_tokens(self) -> int:
        return self.sequences.padded_tokens

    @property
    def target_tokens(self) -> int:
        return self.sequences.target_tokens

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(self.sequences.to(device), self.keys.to(device), self.weights.to(device))


def collate_pairs(pairs: Sequence[TokenizedPair], pad_id: int, pad_to_multiple_of: int = 1,
                  weights: Sequence[float] | None = None) -> PairBatch:
    rows = [[p.chosen] for p in pairs] + [[p.rejected] for p in pairs]
    return PairBatch(collate(rows, pad_id, pad_to_multiple_of), torch.tensor([p.key for p in pairs]),
                     torch.tensor(weights if weights is not None else [1.0] * len(pairs)))


def sequence_logps(model: Any, batch: Batch) -> torch.Tensor:
    """[rows] summed log-probability of each row's trained (response) tokens, in fp32."""
    logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
    return -token_losses(logits, batch.labels).sum(dim=-1)


def dpo_losses(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
               beta: float, loss: str = "sigmoid", chosen_tokens: torch.Tensor | None = None,
               rejected_tokens: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pair loss from summed log-probs (docs/dpo.md §2).

    sigmoid: -log sigmoid(beta [(chosen - ref_chosen) - (rejected - ref_rejected)]).
    ipo: (h - 1/(2 beta))^2 with each log-ratio divided by its response's token count, as TRL does (its
    authors' normalised form; the paper's sums make the target scale with length).
    """
    chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
    if loss == "sigmoid":
        return -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    if loss == "ipo":
        assert chosen_tokens is not None and rejected_tokens is not None
        h = chosen_ratio / chosen_tokens.clamp(min=1) - rejected_ratio / rejected_tokens.clamp(min=1)
        return (h - 1 / (2 * beta)) ** 2
    raise ValueError(f"unknown DPO loss {loss!r}")


def _response_tokens(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    counts = (batch.labels[:, 1:] != IGNORE_INDEX).sum(dim=-1)
    return counts.chunk(2)


# -------------------------------------------------------------------------------------------- objective
@dataclass(frozen=True)
class PreferenceTrainingData:
    """What `load_data` returns: `objectives.TrainingData`'s fields (the loop and the manifest read them).

    Its own type because `trainers.objectives` imports this module (lazily), so this one cannot import it.
    """

    rows: list[TokenizedPair]
    val: PairSet
    train: PairSet
    checksum: str
    template_version: str
    extra: dict[str, Any] = field(default_factory=dict)


class DpoObjective:
    """`objectives.DpoConfig` in the loop of `trainers/sft.py` (the `Objective` interface; see the module
    docstring)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.reference: torch.Tensor | None = None  # [pairs, 2] float64: (chosen, rejected) per key
        self.reference_source: str | None = None  # "computed" or "stored" (tests read it)

    def load_data(self, job: Any, tokenizer: Any) -> PreferenceTrainingData:
        if job.method.prefix_length:
            # Virtual tokens would have to be dropped for the reference and kept for the policy; not built.
            raise ValueError(f"objective dpo: method {job.method.label} (virtual tokens) is not supported; "
                             "use full or lora")
        cfg = job.config
        pset = preference_set(job.dataset, source=job.data_source, limit=job.data_limit,
                              on_error=self.config.bad_rows)
        train_pairs, val_pairs = split_validation(list(pset.pairs), cfg.val_size, cfg.seed)
        train = tokenize_pairs(pset, train_pairs, tokenizer, cfg.max_length, self.config.bad_rows)
        val = tokenize_pairs(pset, val_pairs, tokenizer, cfg.max_length, self.config.bad_rows,
                             start_key=len(train.pairs))
        return PreferenceTrainingData(list(train.pairs), val, train, pset.checksum, pset.template_version,
                            {"objective": "dpo", "preference_set": pset.counts, "reference": REFERENCE_FILE})

    def prepare(self, engine: Any, data: PreferenceTrainingData, job: Any) -> None:
        """Read the stored reference log-probs, or compute and store them (only before the first step)."""
        pairs = (*data.train.pairs, *data.val.pairs)
        path = storage.join(job.output_dir, REFERENCE_FILE)
        identity = _reference_identity(job, pairs)
        stored = storage.read_json(path) if storage.exists(path) else None
        if stored is not None and stored.get("identity") == identity:
            self.reference = torch.tensor([stored["chosen"], stored["rejected"]], dtype=torch.float64).T
            self.reference_source = "stored"
            log.info("dpo: reference log-probs of %d pairs read from %s", len(pairs), path)
            return
        if engine.global_steps > 0:  # resumed: the weights are no longer the stage's input model
            state = "is missing" if stored is None else "belongs to other data or another model"
            raise RuntimeError(f"dpo: resumed at step {engine.global_steps} but {path} {state}; reference "
                               "log-probs are never recomputed from a partially trained model: remove the run's "
                               "checkpoints to start over")
        self.reference = reference_logps(engine, pairs, job.config.batch_size)
        self.reference_source = "computed"
        log.info("dpo: reference log-probs of %d pairs computed from the input model, stored in %s", len(pairs), path)
        if _rank() == 0:
            storage.atomic_write_json(path, {"identity": identity, "pair_ids": [p.pair_id for p in pairs],
                                             "chosen": self.reference[:, 0].tolist(),
                                             "rejected": self.reference[:, 1].tolist()})
        _barrier()

    def collate(self, rows: list[Any], pad_id: int, multiple: int = 1) -> PairBatch:
        return collate_pairs(rows, pad_id, multiple)

    def loss(self, engine: Any, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        per_pair, _ = self._pair_terms(engine, batch)
        return (per_pair * batch.weights).sum(), batch.weights.sum()

    def validate(self, engine: Any, data: PreferenceTrainingData, pad_id: int, batch_size: int) -> dict[str, Any]:
        pairs = data.val.pairs
        if not pairs:
            return {"val_loss": None}
        # loss, accuracy, margin, policy logp chosen/rejected, reward chosen/rejected, pairs: summed over ranks
        totals = torch.zeros(8, dtype=torch.float64, device=engine.device)
        engine.eval()
        with torch.no_grad():
            for batch in _collective_batches(pairs, batch_size, pad_id):
                batch = batch.to(engine.device)
                per_pair, (logp_chosen, logp_rejected, reward_chosen, reward_rejected) = self._pair_terms(engine, batch)
                margin = reward_chosen - reward_rejected
                w = batch.weights.double()
                totals += torch.stack([(x.double() * w).sum() for x in (
                    per_pair, (margin > 0).double(), margin, logp_chosen, logp_rejected, reward_chosen,
                    reward_rejected)] + [w.sum()])
        engine.train()
        _all_reduce(totals)
        n = totals[7]
        loss, accuracy, margin, logp_c, logp_r, reward_c, reward_r = (totals[:7] / n).tolist()
        return {"val_loss": loss, "reward_accuracy": accuracy, "margin": margin, "logp_chosen": logp_c,
                "logp_rejected": logp_r, "reward_chosen": reward_c, "reward_rejected": reward_r}

    def _pair_terms(self, model: Any, batch: PairBatch) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """(per-pair loss, (policy logp chosen, rejected, implicit reward chosen, rejected))."""
        if self.reference is None:
            raise RuntimeError("dpo: the reference log-probs are not prepared (prepare runs before the first step)")
        logps = sequence_logps(model, batch.sequences)
        chosen, rejected = logps.chunk(2)
        ref = self.reference.to(logps.device)[batch.keys].to(logps.dtype)
        tokens = _response_tokens(batch.sequences)
        per_pair = dpo_losses(chosen, rejected, ref[:, 0], ref[:, 1], self.config.beta, self.config.loss, *tokens)
        beta = self.config.beta
        return per_pair, (chosen.detach(), rejected.detach(), beta * (chosen.detach() - ref[:, 0]),
                          beta * (rejected.detach() - ref[:, 1]))


# -------------------------------------------------------------------------------------------- reference
def reference_logps(engine: Any, pairs: Sequence[TokenizedPair], batch_size: int) -> torch.Tensor:
    """[len(pairs), 2] float64 (chosen, rejected) summed response log-probs of the model as it is now, with
    a peft adapter disabled (its base model is the reference). Collective: every rank runs the same number
    of batches over its share, and the shares are summed into one table."""
    from trainers.adapters import peft_model_of

    table = torch.zeros(len(pairs), 2, dtype=torch.float64, device=engine.device)
    module = engine.module if hasattr(engine, "module") else engine
    peft_model = peft_model_of(module)
    adapter_off = peft_model.disable_adapter() if peft_model is not None else contextlib.nullcontext()
    was_training = module.training
    engine.eval()
    # The pad id never reaches a real token (right padding, its own position segment), so any id serves.
    with torch.no_grad(), adapter_off:
        for batch in _collective_batches(pairs, batch_size, pad_id=0):
            batch = batch.to(engine.device)
            chosen, rejected = sequence_logps(engine, batch.sequences).double().chunk(2)
            real = batch.weights > 0
            table[batch.keys[real], 0] = chosen[real]
            table[batch.keys[real], 1] = rejected[real]
    if was_training:
        engine.train()
    _all_reduce(table)  # each key was filled on exactly one rank
    return table.cpu()


def _collective_batches(pairs: Sequence[TokenizedPair], batch_size: int, pad_id: int):
    """This rank's share of `pairs` in batches, the same number on every rank (weight-0 repeats pad it)."""
    rank, world = _rank(), _world_size()
    mine = list(pairs[rank::world])
    n_batches = math.ceil(math.ceil(len(pairs) / world) / batch_size)
    weights = [1.0] * len(mine) + [0.0] * (n_batches * batch_size - len(mine))
    mine += [pairs[0]] * (len(weights) - len(mine))
    for b in range(n_batches):
        part = slice(b * batch_size, (b + 1) * batch_size)
        yield collate_pairs(mine[part], pad_id, weights=weights[part])


def _reference_identity(job: Any, pairs: Sequence[TokenizedPair]) -> dict[str, Any]:
    """What the stored table must match to be read back: the input model and the exact token ids."""
    digest = hashlib.sha256()
    for p in pairs:
        digest.update(p.pair_id.encode() + b"\0")
        for seq in (p.chosen, p.rejected):
            digest.update(array("q", seq.input_ids).tobytes() + array("q", seq.labels).tobytes() + b"\1")
    return {"version": REFERENCE_VERSION, "model": job.model, "revision": job.revision,
            "precision": job.config.precision, "pairs": len(pairs), "tokens_sha256": digest.hexdigest()}


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_initialized() else 0


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_initialized() else 1


def _all_reduce(tensor: torch.Tensor) -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.all_reduce(tensor)


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


__all__ = ["REFERENCE_FILE", "DpoObjective", "PairBatch", "PairSet", "PreferenceTrainingData", "TokenizedPair",
           "check_prompt_lengths", "collate_pairs", "dpo_losses", "reference_logps", "sequence_logps",
           "tokenize_pairs"]
