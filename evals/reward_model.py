"""A reward model given by id: a sequence-classification model with one output, scoring (prompt, reply).

    reward = RewardModel(model="OpenAssistant/reward-model-deberta-v3-large-v2")
    scorer = load_reward_model(reward, device="cuda")
    scores = scorer.score([(prompt, reply), ...])                  # one float per reply, higher is better

Rejection sampling (docs/rejection_sampling.md) scores its samples with it instead of a metric against the
gold. How a (prompt, reply) becomes the model's input (`input`):

- `chat_template`: the prompt's turns plus the reply as the assistant's, through the reward model's own
  chat template (`tokenizer.apply_chat_template`): what chat reward models (Skywork, ArmoRM, ...) expect;
- `pair`: the prompt text and the reply as a text pair (`tokenizer(prompt, reply)`): what the
  DeBERTa-style reward models expect;
- `text`: the prompt text and the reply as one string, as the policy saw and wrote them;
- `auto` (default): `chat_template` when the tokenizer has one, else `pair`.

A text longer than `max_length` is cut from the left, so the reply (at the end) is what is kept. The model
is loaded in eval mode in fp32 on CPU (bf16 on GPU with precision auto), and scores are read in fp32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ptft.core.identity import defines


class RewardModelChoice(BaseModel):
    """What a user chooses of a reward model: which model, which revision, how its input is built (the
    spec's `reward: {...}` adds a batch size to it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str = defines(min_length=1, description="A hub id of a reward model (sequence classification, one "
                                                   "label), or a local model folder.")
    revision: str | None = defines(None, description="Hub revision (a branch, tag or commit).")
    input: Literal["auto", "chat_template", "pair", "text"] = defines(
        "auto", description="How (prompt, reply) is fed: chat_template | pair | text | auto (the chat template "
                            "if the tokenizer has one, else pair).")
    max_length: int = defines(2048, ge=8, description="Tokens per scored input; longer ones are cut from the left.")


class RewardModel(RewardModelChoice):
    """What defines a reward model's scores: the choice, and for a local folder its files."""

    # A local folder enters by its files (names and sizes), so a re-exported model is another reward;
    # filled in by the spec (ptft.study.spec_recipes), None for a hub id (its revision says it).
    files_digest: str | None = defines(None, description="A local folder's file listing, hashed.")


@dataclass(frozen=True)
class ScoredInput:
    """One (prompt, reply) to score; `messages` are the prompt's turns (chat prompt sets), else ()."""

    prompt: str
    reply: str
    messages: tuple[tuple[str, str], ...] = ()


class RewardModelError(ValueError):
    """The reward model cannot score: it is not there, or not a one-output classifier."""


def local_files_digest(folder: str) -> str:
    """A hash of a local folder's files (names and sizes): cheap, and it moves when the model is re-exported."""
    from ptft.core.ids import content_hash
    from ptft.core.integrity import model_files

    return content_hash(sorted(model_files(folder).items()), length=16)


def check_reward_model(reward: RewardModel, tokenizer: Any = None) -> None:
    """Before anything runs: the model's config loads (from the hub cache when offline) and says it is
    a sequence classifier with one output; `chat_template` input needs a tokenizer with a template
    (`tokenizer`, when the caller has it loaded)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(reward.model, revision=reward.revision)
    except Exception as exc:
        raise RewardModelError(f"reward model {reward.model!r} (revision {reward.revision or 'default'!r}): its "
                               f"config does not load ({str(exc).strip().splitlines()[0][:300]})") from exc
    architectures = list(getattr(config, "architectures", None) or [])
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        kind = ", ".join(architectures) or "model of no declared architecture"
        raise RewardModelError(f"reward model {reward.model!r} is a {kind}, not a sequence classifier (a reward "
                               "model has a *ForSequenceClassification head with one output)")
    if int(getattr(config, "num_labels", 1)) != 1:
        raise RewardModelError(f"reward model {reward.model!r} has {config.num_labels} outputs; a reward model "
                               "scores with one")
    if reward.input == "chat_template":
        from evals.model_loading import load_tokenizer

        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(reward.model, reward.revision)
        if not getattr(tokenizer, "chat_template", None):
            raise RewardModelError(f"reward model {reward.model!r}: input chat_template, but its tokenizer has "
                                   "no chat template (use input: pair or text)")


class RewardModelScorer:
    """A loaded reward model: `score` returns one float per (prompt, reply), in input order."""

    def __init__(self, reward: RewardModel, model: Any, tokenizer: Any, device: Any, batch_size: int) -> None:
        self.reward, self.model, self.tokenizer, self.device = reward, model, tokenizer, device
        self.batch_size = batch_size
        self.input = reward.input if reward.input != "auto" else (
            "chat_template" if getattr(tokenizer, "chat_template", None) else "pair")

    def encode(self, item: ScoredInput) -> list[int]:
        """The token ids the model scores for one item (cut from the left to max_length)."""
        tok = self.tokenizer
        if self.input == "chat_template":
            turns = [{"role": r, "content": c} for r, c in item.messages] or [{"role": "user", "content": item.prompt}]
            ids = tok.apply_chat_template([*turns, {"role": "assistant", "content": item.reply.strip()}],
                                          tokenize=True, return_dict=False)
        elif self.input == "pair":
            ids = tok(item.prompt, item.reply.strip())["input_ids"]
        else:
            ids = tok(item.prompt + item.reply)["input_ids"]
        return list(ids)[-self.reward.max_length:]

    def score(self, items: Sequence[ScoredInput]) -> list[float]:
        import torch

        encoded = [self.encode(item) for item in items]
        pad = self.model.config.pad_token_id
        scores: list[float] = [0.0] * len(items)
        # longest first, so a batch pads little; every row is right-padded and masked
        order = sorted(range(len(items)), key=lambda i: -len(encoded[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
                mask[r, :len(encoded[i])] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            # the head pools each row's last non-pad token itself (right padding keeps every row's own)
            values = logits.float()[:, 0]
            for r, i in enumerate(rows):
                scores[i] = float(values[r])
        return scores


def load_reward_model(reward: RewardModel, device: str | None = None, precision: str = "auto",
                      batch_size: int = 8) -> RewardModelScorer:
    """The reward model on `device`, in eval mode; `RewardModelError` naming it when it cannot load."""
    from transformers import AutoModelForSequenceClassification

    from evals.model_loading import load_tokenizer, resolve_device, resolve_dtype

    tokenizer = load_tokenizer(reward.model, reward.revision)
    check_reward_model(reward, tokenizer)  # a causal LM would load here too, with a random head
    dev = resolve_device(device)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            reward.model, revision=reward.revision, dtype=resolve_dtype(precision, dev))
    except Exception as exc:
        raise RewardModelError(f"could not load reward model {reward.model!r}: {exc}") from exc
    if model.config.pad_token_id is None:  # a batch needs a pad id; masked, so any id serves
        model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
            (tokenizer.eos_token_id or 0)
    model.to(dev)
    model.eval()
    return RewardModelScorer(reward, model, tokenizer, dev, batch_size)
