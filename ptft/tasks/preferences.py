"""Preference datasets for DPO, registered like tasks: each row a prompt, a chosen and a rejected response.

    from ptft.tasks import preference_set
    pairs = preference_set("ultrafeedback", source="mini")       # the train split (train_prefs)
    held_out = preference_set("ultrafeedback", "test_prefs", source="mini")

Three schemas (docs/dpo.md §1):

- "messages" (`HuggingFaceH4/ultrafeedback_binarized`): `chosen` / `rejected` are message lists that
  share every message but the last, the assistant's response. The shared messages go through the Tulu
  chat template exactly as SFT's Tulu rows do (`ptft.tasks.formats.render`, open-instruct's format), and
  the prompt ends with the assistant header; the response is the last message's stripped content.
- "dialogue" (`Anthropic/hh-rlhf`): `chosen` / `rejected` strings of "\\n\\nHuman: ..." / "\\n\\nAssistant: ..."
  turns; the prompt is their common prefix of whole turns (everything before the last assistant turn).
  The turns become messages and are rendered as above, so a model tuned on Tulu sees its own format.
- "text" (a folder of `prompt` / `chosen` / `rejected` strings, and the demo's set): prompt + response
  as written, no template (TRL's "standard" format), split at `token_boundary`.

A response always ends with the tokenizer's eos (added at tokenization, `trainers/dpo.py`). Bad rows fail
before anything trains, naming file, line and field: identical chosen and rejected, an empty response,
responses that disagree about their prompt; `trainers.dpo.check_prompt_lengths` adds the prompt longer
than max_length, which needs the tokenizer. `on_error="skip"` counts bad rows instead (hub sets have a few).

The test split of each set is for evaluation only: DPO validates on rows held out of the train split
(`TrainConfig.val_size`, as SFT does), so the lr search never reads the test split.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptft.core.ids import canonical_json, sha256_text
from ptft.tasks.errors import DataError, UnknownTaskError, check_choice
from ptft.tasks.formats.render import RowContext, render_row, token_boundary
from ptft.tasks.formats.templates import CHAT
from ptft.tasks.loading import read_jsonl
from ptft.tasks.registry import REGISTRY, get_task
from ptft.tasks.types import Segment

PREFERENCE_DIR = Path(__file__).resolve().parent / "mini" / "preferences"
SCHEMAS = ("messages", "dialogue", "text")
ON_ERROR = ("raise", "skip")
# Bumped when a rendering rule here changes: part of every set's template_version.
RULES_VERSION = 1


@dataclass(frozen=True)
class PreferenceSpec:
    """One preference dataset: where it lives, its schema, its splits."""

    name: str
    hub_id: str | None  # None: local data only (a folder, or the shipped mini)
    schema: str  # one of SCHEMAS
    train_split: str
    test_split: str | None
    hub_data_dir: str | None = None  # `load_dataset(hub_id, data_dir=...)` (hh-rlhf's subsets)
    split_sizes: dict[str, int] = field(default_factory=dict)  # real split sizes, for estimates
    tokens_per_example: int = 400  # rough prompt + both responses, for cost estimates
    notes: str = ""

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def columns(self) -> tuple[str, ...]:
        return ("prompt", "chosen", "rejected") if self.schema == "text" else ("chosen", "rejected")


def _entries() -> list[PreferenceSpec]:
    return [
        PreferenceSpec("ultrafeedback", "HuggingFaceH4/ultrafeedback_binarized", "messages", "train_prefs",
                       "test_prefs", split_sizes={"train_prefs": 61135, "test_prefs": 2000},
                       tokens_per_example=900, notes="binarized UltraFeedback: highest-scored vs a random lower one"),
        PreferenceSpec("hh_rlhf", "Anthropic/hh-rlhf", "dialogue", "train", "test",
                       split_sizes={"train": 160800, "test": 8552}, tokens_per_example=400,
                       notes="all subsets; a few hub rows repeat chosen as rejected: dpo.bad_rows=skip counts them"),
        PreferenceSpec("preference_pairs", None, "text", "train", "test",
                       notes="your own pairs: <folder>/preference_pairs/<split>.jsonl with prompt/chosen/rejected"),
        PreferenceSpec("demo_prefs", None, "text", "train", "test", split_sizes={"train": 240, "test": 80},
                       tokens_per_example=60, notes="the demo's learnable set: right vs wrong NLI labels and "
                       "faithful vs other stories' summaries (ptft/tasks/mini/generate_preferences.py)"),
    ]


PREFERENCE_SETS: dict[str, PreferenceSpec] = {spec.name: spec for spec in _entries()}
assert not set(PREFERENCE_SETS) & set(REGISTRY), "a preference set and a task share a name"


def get_preference_set(name: str) -> PreferenceSpec:
    """The registry entry for `name`; UnknownTaskError (KeyError and ValueError) with a suggestion."""
    try:
        return PREFERENCE_SETS[name]
    except KeyError:
        raise UnknownTaskError(name, PREFERENCE_SETS) from None


def list_preference_sets() -> list[str]:
    return list(PREFERENCE_SETS)


def is_preference_set(name: str) -> bool:
    return name in PREFERENCE_SETS


@dataclass(frozen=True)
class PreferencePair:
    """One rendered pair. `prompt` is untrained text (an earlier chat turn's eos is a segment's eos flag);
    each response is followed by eos at tokenization. `row`: the 1-based line of a local file, else the
    row's index in the hub split."""

    pair_id: str
    prompt: tuple[Segment, ...]
    chosen: str
    rejected: str
    row: int


@dataclass(frozen=True)
class PreferenceSet:
    spec: PreferenceSpec
    split: str
    source: str
    path: str | None  # the jsonl file read (None for the hub)
    pairs: tuple[PreferencePair, ...]
    checksum: str
    counts: dict[str, int]
    template_version: str

    def error(self, pair: PreferencePair, field_name: str | None, problem: str, fix: str | None = None) -> DataError:
        """A DataError naming this set's file (or hub split), the pair's line (or row) and the field."""
        return DataError(self.spec.name, self.split, pair.row, field_name, problem, self.path, fix)


def split_path(spec: PreferenceSpec, split: str, source: str) -> str:
    """`<folder>/<set>/<split>.jsonl`; "mini" is the shipped folder (`ptft/tasks/mini/preferences`)."""
    folder = PREFERENCE_DIR if source == "mini" else Path(source)
    return str(folder / spec.name / f"{split}.jsonl")


def template_version(name: str) -> str:
    """A hash of what renders the set: its schema, the chat template and this module's rules."""
    spec = get_preference_set(name)
    return sha256_text(canonical_json({"schema": spec.schema, "chat": CHAT, "rules": RULES_VERSION}))[:16]


def preference_set(name: str, split: str | None = None, source: str = "hub", limit: int | None = None,
                   on_error: str = "raise") -> PreferenceSet:
    """The rendered pairs of `name`'s `split` (default: its train split) from `source`: "hub", "mini" or a
    folder. `limit` keeps the first N rows. counts: rows, skipped_bad_rows, pairs."""
    spec = get_preference_set(name)
    check_choice("on_error", on_error, ON_ERROR)
    split = split or spec.train_split
    rows, lines, path = _load(spec, split, source)
    if limit is not None:
        rows, lines = rows[:limit], lines[:limit]
    out = PreferenceSet(spec, split, source, path, (), "", {}, template_version(name))
    pairs: list[PreferencePair] = []
    skipped = 0
    for i, (row, line) in enumerate(zip(rows, lines, strict=True)):
        try:
            pairs.append(render_pair(out, row, line, f"{name}/{split}/{i}"))
        except DataError:
            if on_error == "raise":
                raise
            skipped += 1
    checksum = sha256_text(canonical_json([[p.pair_id, [[s.text, s.eos] for s in p.prompt], p.chosen, p.rejected]
                                           for p in pairs]))
    counts = {"rows": len(rows), "skipped_bad_rows": skipped, "pairs": len(pairs)}
    return dataclasses.replace(out, pairs=tuple(pairs), checksum=checksum, counts=counts)


def _load(spec: PreferenceSpec, split: str, source: str) -> tuple[list[dict[str, Any]], list[int], str | None]:
    """(rows, their line numbers, the file) of a local split; a hub split's rows with their indices."""
    if source == "hub":
        if spec.hub_id is None:
            raise DataError(spec.name, split, None, None, "has no hub copy",
                            fix=f"set data.source to a folder holding {spec.name}/{split}.jsonl, or 'mini'")
        import datasets

        dataset = datasets.load_dataset(spec.hub_id, data_dir=spec.hub_data_dir, split=split)
        return list(dataset), list(range(len(dataset))), None
    path = split_path(spec, split, source)
    if not os.path.isfile(path):
        raise DataError(spec.name, split, None, None, f"no file {path} (source={source!r})",
                        fix=f"write the split to {path}, one JSON object per line, or change data.source")
    written = read_jsonl(path, spec.name, split)
    if not written.rows:
        raise DataError(spec.name, split, None, None, f"empty split ({path})", path,
                        "write the split's pairs into the file, one JSON object per line")
    return list(written.rows), list(written.lines), path


def render_pair(pset: PreferenceSet, row: dict[str, Any], line: int, pair_id: str) -> PreferencePair:
    """One row of `pset`'s schema as a `PreferencePair`; DataError naming the field on a bad row."""
    pair = PreferencePair(pair_id, (), "", "", line)
    for column in pset.spec.columns:
        if row.get(column) is None:
            raise pset.error(pair, column, "missing column" if column not in row else "missing value (null)",
                             f"give every row {', '.join(pset.spec.columns)}")
    schema = pset.spec.schema
    if schema == "text":
        prompt, chosen, rejected = _text_pair(pset, pair, row)
    else:
        if schema == "dialogue":
            chosen_messages = _dialogue_messages(pset, pair, row["chosen"], "chosen")
            rejected_messages = _dialogue_messages(pset, pair, row["rejected"], "rejected")
        else:
            chosen_messages, rejected_messages = row["chosen"], row["rejected"]
        prompt, chosen, rejected = _chat_pair(pset, pair, chosen_messages, rejected_messages, line)
    if chosen == rejected:
        raise pset.error(pair, "rejected", "identical to chosen: the pair prefers nothing",
                         "remove the row, or give it a different rejected response")
    return dataclasses.replace(pair, prompt=prompt, chosen=chosen, rejected=rejected)


def _text_pair(pset: PreferenceSet, pair: PreferencePair, row: dict[str, Any]) -> tuple[tuple[Segment, ...], str, str]:
    texts = {}
    for column in ("prompt", "chosen", "rejected"):
        if not isinstance(row[column], str):
            raise pset.error(pair, column, f"expected text, got {type(row[column]).__name__}")
        texts[column] = row[column]
    for column in ("chosen", "rejected"):
        if not texts[column].strip():
            raise pset.error(pair, column, "empty response", "give the row a non-empty response")
    # Both responses move the prompt's final whitespace onto themselves (one tokenization of the prompt).
    head, chosen = token_boundary(texts["prompt"], texts["chosen"])
    _, rejected = token_boundary(texts["prompt"], texts["rejected"])
    return (Segment(head, train=False),) if head else (), chosen, rejected


# "\n\nHuman: ..." / "\n\nAssistant: ..." turns of an hh-rlhf dialogue.
_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def _dialogue_messages(pset: PreferenceSet, pair: PreferencePair, text: Any, column: str) -> list[dict[str, str]]:
    if not isinstance(text, str):
        raise pset.error(pair, column, f"expected a dialogue string, got {type(text).__name__}")
    parts = _TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise pset.error(pair, column, "expected '\\n\\nHuman: ...' / '\\n\\nAssistant: ...' turns from the start")
    return [{"role": _ROLES[role], "content": content} for role, content in zip(parts[1::2], parts[2::2], strict=True)]


def _chat_pair(pset: PreferenceSet, pair: PreferencePair, chosen: Any, rejected: Any,
               line: int) -> tuple[tuple[Segment, ...], str, str]:
    """The shared messages rendered as Tulu's prompt, and the two last assistant turns."""
    for column, messages in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(messages, list) or not messages:
            raise pset.error(pair, column, "expected a non-empty list of messages")
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "assistant":
            raise pset.error(pair, f"{column}[{len(messages) - 1}]", "the last message must be the assistant's response")
        if not isinstance(last.get("content"), str) or not last["content"].strip():
            raise pset.error(pair, f"{column}[{len(messages) - 1}].content", "empty response",
                             "give the row a non-empty response")
    if _turns(chosen[:-1]) != _turns(rejected[:-1]):
        raise pset.error(pair, "rejected", "chosen and rejected differ before their last assistant turn, so "
                         "they do not answer one prompt")
    # Tulu's renderer on the chosen conversation (a task spec reading this set's column, so its errors
    # name this set and field): the last segment is the final response, everything before is the prompt.
    spec = dataclasses.replace(get_task("tulu"), name=pset.spec.name, columns={"messages": "chosen"})
    rendered = render_row(spec, {"chosen": chosen}, "default", "fixed", RowContext(spec, pset.split, line),
                          pair.pair_id)
    *head, response = rendered.segments
    prompt = tuple(Segment(s.text, train=False, eos=s.eos) for s in head)
    return prompt, response.text, rejected[-1]["content"].strip()


def _turns(messages: list[Any]) -> list[tuple[Any, Any]]:
    return [(m.get("role"), m.get("content", "").strip() if isinstance(m.get("content"), str) else m.get("content"))
            if isinstance(m, dict) else (None, m) for m in messages]
