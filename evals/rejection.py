"""Rejection sampling's first step: sample N completions per prompt, score them, keep the best (docs/rejection_sampling.md).

    config = RejectionConfig(dataset="xsum", samples=4, temperature=0.8, reward="rougeL")
    summary = sample_and_score(model_path, config, out_dir, source="mini")   # skipped when done
    kept_data_task(out_dir, "<cell_id>", config)                             # the kept set, as a task

The prompts are the task's rendered training examples (fixed mode, the stage's format): prompt = what SFT
would feed, gold = its target; for a chat task, every turn before a row's last reply, gold = that reply
(`prompt_set`). Completions are drawn by `evals.generation.sample`, each (prompt, sample) from its own
seed (`sample_seed`), so a rerun draws the same samples whatever the batching. Each is scored by a metric
against the gold (`REWARDS`) or by a reward model (`evals.reward_model`); the best per prompt is kept
when it is not empty and reaches the threshold. What is written (atomically, the marker last; local or
object storage):

    samples.jsonl   every completion: prompt_id, sample, text, score, kept
    kept.jsonl      the SFT set: prompt_id, prompt, target, or prompt_id, messages for a chat prompt set
                    (read back as the `kept` split of a folder task)
    summary.json    prompts, samples, kept, kept_fraction, mean_best_score, mean_score, and the config
    DONE.json       written last: every file above with its size; trusted only if they are all there
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from evals.reward_model import RewardModel
from ptft.core import storage
from ptft.core.identity import defines, setting
from ptft.tasks.metrics import text_metric

REWARDS = ("rougeL", "exact_match", "f1", "label")
# The task types a stage can sample from, and the metrics that can score each (docs/rejection_sampling.md);
# a reward model (`RewardModel`) scores any of them.
REWARDS_FOR = {"generation": ("rougeL", "exact_match", "f1"),
               "classification": ("label", "exact_match", "f1", "rougeL"),
               "multiple_choice": ("label", "exact_match", "f1", "rougeL"),
               "chat": ("rougeL", "exact_match", "f1")}
# A chat reply ends at its eos; a tiny or untuned model may run on into a turn of its own instead
CHAT_STOPS = ("<|user|>", "<|assistant|>", "<|system|>")
KEPT_SPLIT = "kept"  # kept.jsonl: the folder task's train split
FILES = ("samples.jsonl", "kept.jsonl", "summary.json")
MARKER = "DONE.json"


class RejectionConfig(BaseModel):
    """What defines a rejection-sampling stage's data: the prompts, how they are sampled and scored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = defines(description="The task whose training prompts are sampled (its targets are the gold).")
    fmt: str = defines("default", description="The prompt format (fixed mode).")
    samples: int = defines(4, ge=1, description="Completions sampled per prompt (N).")
    temperature: float = defines(1.0, gt=0.0, description="Softmax temperature of the sampling.")
    top_p: float = defines(1.0, gt=0.0, le=1.0, description="Nucleus: the smallest token set reaching this mass.")
    seed: int = defines(0, description="Seed of every draw (with the prompt id and sample index).")
    reward: Literal["rougeL", "exact_match", "f1", "label"] | RewardModel = defines(
        "rougeL", description="Score against the gold (a text metric, or label: the exact label word), or "
                              "a reward model's score of (prompt, reply).")
    threshold: float | None = defines(None, description="Keep a prompt's best only if it scores at least this.")
    max_new_tokens: int = defines(64, ge=1, description="Token budget of each completion.")
    prompts: int | None = defines(None, ge=1, description="Sample only the first this many training prompts.")
    reward_batch_size: int = setting(8, ge=1, description="Replies a reward model scores per forward pass.")

    @property
    def reward_name(self) -> str:
        """The reward as the console and the report name it: the metric, or the reward model's id."""
        return self.reward if isinstance(self.reward, str) else self.reward.model


@dataclass(frozen=True)
class Prompt:
    """One prompt to sample: its text, its gold reply, and for a chat prompt set its turns."""

    prompt_id: str
    prompt: str  # the text before the reply (chat: the turns rendered, without earlier replies' eos)
    gold: str
    messages: tuple[tuple[str, str], ...] = ()  # chat: (role, content) of the turns before the reply
    eos_at: tuple[int, ...] = ()  # chat: offsets in `prompt` where an earlier reply's eos token goes

    def context(self, eos_token: str | None) -> str:
        """What the model is fed: `prompt` with the eos token after each earlier reply, as SFT fed it."""
        if not self.eos_at or not eos_token:
            return self.prompt
        cuts = (0, *self.eos_at, len(self.prompt))
        return eos_token.join(self.prompt[a:b] for a, b in zip(cuts, cuts[1:], strict=False))


@dataclass(frozen=True)
class Scored:
    prompt_id: str
    sample: int
    text: str
    score: float


def sample_seed(seed: int, prompt_id: str, sample: int) -> int:
    """The seed of one (prompt, sample) draw: a hash, so no two draws share a stream and none depends on
    which other prompts are in the run."""
    digest = hashlib.sha256(f"{seed}\x00{prompt_id}\x00{sample}".encode()).hexdigest()
    return int(digest[:15], 16)


def label_match(text: str, gold: str) -> float:
    """1.0 when the completion's first line, stripped, is exactly the gold label word."""
    lines = text.strip().splitlines()
    return float(bool(lines) and lines[0].strip() == gold.strip())


def reward_function(name: str) -> Callable[[str, str], float]:
    """`(completion, gold) -> score` of a reward metric's name; ValueError listing the known ones."""
    if name == "label":
        return label_match
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; choose from {', '.join(REWARDS)}")
    return text_metric(name)


def prompt_set(config: RejectionConfig, source: str) -> tuple[list[Prompt], tuple[str, ...]]:
    """The stage's prompts (the task's rendered training examples, fixed mode) and its stop sequences."""
    from ptft import tasks
    from ptft.tasks.formats.templates import task_stop_sequences

    rendered = tasks.training_set(config.dataset, config.fmt, "fixed", source=source, limit=config.prompts)
    spec = rendered.task
    if spec.task_type not in REWARDS_FOR:
        raise ValueError(f"{config.dataset!r} is a {spec.task_type} task; rejection sampling samples "
                         f"{', '.join(REWARDS_FOR)} tasks")
    if spec.task_type == "chat":
        rows = tasks.training_rows(config.dataset, source, limit=config.prompts)
        return [_chat_prompt(r, rows[r.example_id][spec.columns["messages"]]) for r in rendered.examples], CHAT_STOPS
    # a label or a choice is one line: stop at the newline (a generation task's own stops say where its
    # answer ends)
    stops = task_stop_sequences(spec, config.fmt, "fixed") if spec.task_type == "generation" else ("\n",)
    return [Prompt(r.example_id, r.prompt, r.completion) for r in rendered.examples], tuple(stops)


def _chat_prompt(rendered: Any, messages: list[dict[str, Any]]) -> Prompt:
    """A chat row's prompt: every turn before its last reply, rendered as SFT renders them (the text of
    the training segments before the reply, with the eos after each earlier reply), and the turns."""
    last = max(i for i, m in enumerate(messages) if m.get("role") == "assistant")
    text, eos_at = "", []
    for segment in rendered.segments:
        if len(text) >= len(rendered.prompt):
            break
        text += segment.text
        if segment.eos:
            eos_at.append(len(text))
    # the segments before the reply are the prompt, exactly (ptft/tasks/formats/render.py renders both)
    assert text == rendered.prompt, (rendered.example_id, text, rendered.prompt)
    turns = tuple((str(m["role"]), str(m["content"])) for m in messages[:last])
    return Prompt(rendered.example_id, rendered.prompt, rendered.completion, turns, tuple(eos_at))


def select_best(scored: Sequence[Scored], threshold: float | None) -> dict[str, Scored]:
    """Per prompt, its kept completion: the highest score (ties: the lowest sample index), not empty, at
    least `threshold` when one is given. Prompts with none kept are absent."""
    best: dict[str, Scored] = {}
    for item in scored:
        if not item.text.strip():  # an empty completion cannot be an SFT target
            continue
        current = best.get(item.prompt_id)
        if current is None or (item.score, -item.sample) > (current.score, -current.sample):
            best[item.prompt_id] = item
    return {pid: s for pid, s in best.items() if threshold is None or s.score >= threshold}


def summarize(prompts: Sequence[Prompt], scored: Sequence[Scored], kept: dict[str, Scored],
              config: RejectionConfig) -> dict[str, Any]:
    """prompts, samples, kept, kept_fraction, mean_best_score (best per prompt, kept or not), mean_score."""
    best: dict[str, float] = {}
    for item in scored:
        best[item.prompt_id] = max(best.get(item.prompt_id, item.score), item.score)
    return {"prompts": len(prompts), "samples": len(scored), "kept": len(kept),
            "kept_fraction": len(kept) / len(prompts) if prompts else 0.0,
            "mean_best_score": sum(best.values()) / len(best) if best else 0.0,
            "mean_score": sum(s.score for s in scored) / len(scored) if scored else 0.0,
            "config": config.model_dump(mode="json")}


def is_done(out_dir: str) -> bool:
    """Whether the marker is there and every file it lists is there at its size."""
    marker = storage.join(out_dir, MARKER)
    if not storage.exists(marker):
        return False
    try:
        listed = storage.read_json(marker)["files"]
    except (ValueError, KeyError, TypeError):
        return False
    for name, size in listed.items():
        path = storage.join(out_dir, name)
        if not storage.exists(path) or len(storage.read_bytes(path)) != size:
            return False
    return set(listed) == set(FILES)


def read_summary(out_dir: str) -> dict[str, Any]:
    return storage.read_json(storage.join(out_dir, "summary.json"))


def sample_and_score(model_path: str, config: RejectionConfig, out_dir: str, source: str, *,
                     revision: str | None = None, device: str | None = None, precision: str = "auto",
                     batch_size: int = 16, lm: Any = None) -> dict[str, Any]:
    """Sample, score and keep; write the stage's data under `out_dir`; return its summary. A folder
    whose marker verifies is not redone. `lm` (a loaded model) skips loading `model_path`."""
    from evals.generation import Sampling, sample
    from evals.model_loading import load_model
    from evals.requests import GenerationRequest

    if is_done(out_dir):
        return read_summary(out_dir)
    prompts, stops = prompt_set(config, source)
    loaded = lm is None
    lm = lm if lm is not None else load_model(model_path, revision, precision=precision, device=device)
    requests, seeds, keys = [], [], []
    for p in prompts:
        context = p.context(lm.tokenizer.eos_token)
        for j in range(config.samples):
            requests.append(GenerationRequest(context=context, stop=stops, max_new_tokens=config.max_new_tokens))
            seeds.append(sample_seed(config.seed, p.prompt_id, j))
            keys.append((p, j))
    results = sample(lm, requests, Sampling(config.temperature, config.top_p), seeds, batch_size=batch_size)
    if loaded and not isinstance(config.reward, str):  # a reward model is loaded next: never two live models
        _free(lm)
    del lm
    texts = [r.text for r in results]
    scores = score_replies(config, [p for p, _ in keys], texts, device=device, precision=precision)
    scored = [Scored(p.prompt_id, j, text, value) for (p, j), text, value in zip(keys, texts, scores, strict=True)]
    kept = select_best(scored, config.threshold)
    write_stage_data(out_dir, prompts, scored, kept, summarize(prompts, scored, kept, config))
    return read_summary(out_dir)


def _free(lm: Any) -> None:
    import gc

    import torch

    lm.model = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def score_replies(config: RejectionConfig, prompts: Sequence[Prompt], texts: Sequence[str], *,
                  device: str | None = None, precision: str = "auto") -> list[float]:
    """Each reply's reward: the metric against its prompt's gold, or the reward model's score."""
    if isinstance(config.reward, str):
        metric = reward_function(config.reward)
        return [metric(text, p.gold) for p, text in zip(prompts, texts, strict=True)]
    from evals.reward_model import ScoredInput, load_reward_model

    scorer = load_reward_model(config.reward, device=device, precision=precision,
                               batch_size=config.reward_batch_size)
    return scorer.score([ScoredInput(p.prompt, text, p.messages) for p, text in zip(prompts, texts, strict=True)])


def write_stage_data(out_dir: str, prompts: Sequence[Prompt], scored: Sequence[Scored], kept: dict[str, Scored],
                     summary: dict[str, Any]) -> None:
    """The three files (each atomically), then the marker listing their sizes."""
    by_id = {p.prompt_id: p for p in prompts}
    order = {p.prompt_id: i for i, p in enumerate(prompts)}
    texts = {
        "samples.jsonl": _jsonl({"prompt_id": s.prompt_id, "sample": s.sample, "text": s.text, "score": s.score,
                                 "kept": kept.get(s.prompt_id) is s} for s in scored),
        # the SFT target is the completion without its leading space: rendering joins prompt and target
        # with the join-space rule, as for the gold targets (ptft/tasks/formats/render.py)
        "kept.jsonl": _jsonl(_kept_row(by_id[pid], s.text)
                             for pid, s in sorted(kept.items(), key=lambda kv: order[kv[0]])),
        "summary.json": json.dumps(summary, indent=2, sort_keys=True),
    }
    storage.makedirs(out_dir)
    for name, text in texts.items():
        storage.atomic_write_text(storage.join(out_dir, name), text)
    storage.atomic_write_json(storage.join(out_dir, MARKER),
                              {"files": {name: len(text.encode()) for name, text in texts.items()}})


def _kept_row(prompt: Prompt, text: str) -> dict[str, Any]:
    """A kept row: prompt -> target, or for a chat prompt the turns with the kept reply as the last."""
    if prompt.messages:
        turns = [{"role": role, "content": content} for role, content in prompt.messages]
        return {"prompt_id": prompt.prompt_id, "messages": [*turns, {"role": "assistant", "content": text.strip()}]}
    return {"prompt_id": prompt.prompt_id, "prompt": prompt.prompt, "target": text.strip()}


def _jsonl(rows: Any) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def kept_declaration(out_dir: str, name: str, fmt: str, chat: bool = False) -> Any:
    """The kept set as a declared task: a folder source (`out_dir`, split `kept`), prompt -> target with
    the template `{prompt}`, so a kept row renders as the prompt SFT on the original task would feed; a
    chat prompt set's is a chat task (its turns render in the Tulu format, as the original's)."""
    from ptft.tasks.declared import TaskDeclaration, TaskSource, TaskSplits

    if storage.is_remote(out_dir):
        raise ValueError(f"rejection sampling reads its kept set as a folder task: {out_dir} must be local")
    if chat:
        return TaskDeclaration(
            name=name, type="chat", source=TaskSource(folder=os.path.abspath(out_dir)),
            splits=TaskSplits(train=KEPT_SPLIT), columns={"messages": "messages"}, train_subset_size=None,
            description="the kept replies of a rejection-sampling stage", declared_in=out_dir)
    return TaskDeclaration(
        name=name, type="generation", source=TaskSource(folder=os.path.abspath(out_dir)),
        splits=TaskSplits(train=KEPT_SPLIT), columns={"prompt": "prompt", "target": "target"},
        templates={fmt: "{prompt}"}, train_subset_size=None,
        description="the kept completions of a rejection-sampling stage", declared_in=out_dir,
    )


def kept_task_name(cell_id: str) -> str:
    """The declared task a rejection_sampling cell's trials train on."""
    return f"rs_{cell_id}"


def kept_data_task(folder: str, cell_id: str, config: RejectionConfig) -> Any:
    """That task: the cell's kept set in `folder`, rendered in its format; ValueError when the data is not
    there (the grid samples it before the stage's wave)."""
    from ptft import tasks

    if not is_done(folder):
        raise ValueError(f"cell {cell_id}: its rejection-sampled data is not there yet ({folder})")
    chat = tasks.get_task(config.dataset).task_type == "chat"
    local = storage.local_copy(folder, local_stage_copy(folder)) if storage.is_remote(folder) else folder
    return kept_declaration(local, kept_task_name(cell_id), config.fmt, chat=chat)


def local_stage_copy(uri: str) -> str:
    """Where a stage folder in object storage is copied to be read as a folder task: under
    `$PTFT_DATA_CACHE` (default ~/.cache/ptft/stages), by URI. A trial's workers fetch it there too
    (`TrainJob.remote_folders`), so the declaration's folder is the same path on every node."""
    from ptft.core.ids import content_hash

    root = os.environ.get("PTFT_DATA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ptft", "stages")
    return os.path.join(root, content_hash({"uri": uri}, length=16))
