"""Raw-text corpora for continual pre-training, registered by name like tasks (docs/continual_pt.md §1).

    from ptft.tasks import CorpusSpec, corpus_documents, register_corpus
    register_corpus(CorpusSpec(name="my_corpus", folder="/data/my_corpus"))   # <split>.jsonl with "text"
    register_corpus(CorpusSpec(name="wiki", hub="Salesforce/wikitext", config="wikitext-103-raw-v1"))
    docs = corpus_documents("recipes", "train")      # CorpusDocuments: texts, checksum, counts, origin

A corpus is a folder of jsonl files whose rows hold the text in one field, or a hub dataset with a named text
column (loaded with `datasets.load_dataset(hub, config, split=...)`). It has two logical splits, "train"
and "validation": the held-out one is a validation file/split, or (`validation_split: None`) a seeded
fraction of the train split. Blank documents are skipped and counted; a corpus with no document, a row
without the text field and a text that is not a string fail naming the file, line and field (or hub row).

Sources mirror the tasks' (`ptft/tasks/loading.py`): a folder corpus always reads its folder; a hub corpus
reads the hub for source="hub", the shipped mini copy (`mini/corpora/<name>/`) for "mini", and
`<source>/<name>/<split>.jsonl` for a folder source. Shipped: `recipes` (a new domain the demo's
pre-training never saw) and `demo_pretrain` (the old domain: documents like the demo's pre-training corpus).
"""

from __future__ import annotations

import glob
import hashlib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ptft.tasks.errors import DataError, did_you_mean
from ptft.tasks.loading import read_jsonl
from ptft.tasks.registry import REGISTRY

MINI_CORPORA_DIR = Path(__file__).resolve().parent / "mini" / "corpora"
SPLITS = ("train", "validation")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a corpus name is a folder name, as a task's is


class CorpusSpec(BaseModel):
    """One corpus: where its documents are, which field holds the text, and how the held-out split is made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Short name a continual_pt stage's `dataset` (or replay) uses.")
    folder: str | None = Field(None, description="Folder of <split>.jsonl files (or <split>-*.jsonl shards).")
    hub: str | None = Field(None, description="Hub dataset id, loaded with datasets.load_dataset(hub, config).")
    config: str | None = Field(None, description="Hub config name (hub corpora only).")
    text_field: str = Field("text", min_length=1, description="The field (column) holding each document's text.")
    train_split: str = Field("train", min_length=1, description="File stem or hub split trained on.")
    validation_split: str | None = Field(
        "validation", description="File stem or hub split held out; null: hold out held_out_fraction of train.")
    held_out_fraction: float = Field(0.05, gt=0.0, lt=1.0,
                                     description="Share of train held out when there is no validation split.")
    held_out_seed: int = Field(42, description="Seed of that held-out draw.")
    description: str = Field("", description="Free text.")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a corpus name: use letters, digits, '_', '.', '-'")
        return name

    @model_validator(mode="after")
    def _one_source(self) -> CorpusSpec:
        if (self.hub is None) == (self.folder is None):
            raise ValueError(f"corpus {self.name!r}: give exactly one of folder and hub")
        if self.config is not None and self.hub is None:
            raise ValueError(f"corpus {self.name!r}: config belongs to a hub corpus")
        return self


@dataclass(frozen=True)
class CorpusDocuments:
    """One logical split of a corpus: its documents in order, their checksum, counts and where they came from."""

    corpus: str
    split: str
    texts: tuple[str, ...]
    checksum: str  # sha256 over the documents (length-prefixed), so order and boundaries count
    origin: str  # the files read, or hub id[/config]:split
    counts: dict[str, int] = field(default_factory=dict)  # rows read, documents kept, blank skipped


class UnknownCorpusError(KeyError, ValueError):
    """An unknown corpus name; a KeyError (lookup) and a ValueError (bad input), like UnknownTaskError."""

    def __init__(self, name: str, known: tuple[str, ...] = ()) -> None:
        self.name = name
        self.message = f"unknown corpus {name!r}{did_you_mean(name, known)}; registered: {', '.join(known) or 'none'}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message

    def __reduce__(self):  # pickles for Ray without re-deriving the suggestion
        return (_unknown_from_message, (self.name, self.message))


def _unknown_from_message(name: str, message: str) -> UnknownCorpusError:
    err = UnknownCorpusError.__new__(UnknownCorpusError)
    err.name, err.message, err.args = name, message, (message,)
    return err


CORPORA: dict[str, CorpusSpec] = {}


def register_corpus(spec: CorpusSpec) -> CorpusSpec:
    """Make `spec` a corpus of this process. Idempotent for an identical spec (Ray workers call it with the
    job's); a different spec under a registered name, or a task's name, raises ValueError."""
    existing = CORPORA.get(spec.name)
    if existing is not None:
        if existing == spec:
            return existing
        raise ValueError(f"corpus {spec.name!r} is already registered as {existing.model_dump(exclude_defaults=True)}; "
                         f"cannot register it again as {spec.model_dump(exclude_defaults=True)}")
    if spec.name in REGISTRY:  # one name, one kind: a stage that names it can be told it is the wrong kind
        raise ValueError(f"{spec.name!r} is a task; give the corpus another name")
    CORPORA[spec.name] = spec
    return spec


def get_corpus(name: str) -> CorpusSpec:
    try:
        return CORPORA[name]
    except KeyError:
        raise UnknownCorpusError(name, tuple(CORPORA)) from None


def list_corpora() -> list[str]:
    return sorted(CORPORA)


def is_corpus(name: str) -> bool:
    return name in CORPORA


def corpus_documents(name: str, split: Literal["train", "validation"] = "train", source: str = "hub",
                     limit: int | None = None) -> CorpusDocuments:
    """The documents of one logical split ("train" or "validation"), in corpus order, the first `limit`.

    With no validation split, both come from the train split: a seeded `held_out_fraction` of its documents
    is "validation" and the rest "train", whatever `limit` is (so a smoke run holds out the same documents).
    """
    if split not in SPLITS:
        raise ValueError(f"corpus split {split!r}: choose from {SPLITS}")
    spec = get_corpus(name)
    held_out_by_fraction = spec.validation_split is None
    stored = spec.validation_split if split == "validation" and not held_out_by_fraction else spec.train_split
    texts, origin, rows = _read_split(spec, stored, source)
    blank = rows - len(texts)
    if held_out_by_fraction:
        if len(texts) < 2:
            raise DataError(spec.name, stored, None, None,
                            f"{len(texts)} document(s) cannot be split into train and held-out ({origin})",
                            fix="add documents or a validation split")
        held = _held_out(len(texts), spec.held_out_fraction, spec.held_out_seed)
        texts = [t for i, t in enumerate(texts) if (i in held) == (split == "validation")]
        origin += (f" ({'the held-out' if split == 'validation' else 'all but the held-out'} "
                   f"{spec.held_out_fraction:g}, seed {spec.held_out_seed})")
    kept = tuple(texts[:limit] if limit is not None else texts)
    # rows and blank are the stored split's (shared by both logical splits when held out by fraction)
    return CorpusDocuments(spec.name, split, kept, documents_checksum(kept), origin,
                           {"rows": rows, "blank": blank, "documents": len(kept)})


def documents_checksum(texts: tuple[str, ...] | list[str]) -> str:
    """sha256 over the documents, each prefixed by its byte length, so moving a boundary changes it."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _held_out(n: int, fraction: float, seed: int) -> set[int]:
    order = list(range(n))
    random.Random(f"ptft-corpus-held-out/{seed}").shuffle(order)
    return set(order[:max(1, round(n * fraction))])


def _read_split(spec: CorpusSpec, stored: str, source: str) -> tuple[list[str], str, int]:
    """(non-blank texts, origin, rows read) of one stored split; raises DataError on an empty or bad split."""
    folder = _local_folder(spec, source)
    if folder is None:
        texts, rows, origin = _hub_texts(spec, stored)
    else:
        texts, rows, origin = _folder_texts(spec, folder, stored)
    if not texts:
        raise DataError(spec.name, stored, None, None,
                        f"empty corpus: {rows} row(s), no document with text ({origin})",
                        fix=f"write documents into it, one JSON object with a {spec.text_field!r} string per line")
    return texts, origin, rows


def _local_folder(spec: CorpusSpec, source: str) -> Path | None:
    if spec.folder is not None:
        return Path(spec.folder)
    if source == "hub":
        return None
    return (MINI_CORPORA_DIR if source == "mini" else Path(source)) / spec.name


def _folder_texts(spec: CorpusSpec, folder: Path, stored: str) -> tuple[list[str], int, str]:
    paths = sorted({*glob.glob(str(folder / f"{glob.escape(stored)}.jsonl")),
                    *glob.glob(str(folder / f"{glob.escape(stored)}-*.jsonl"))})
    if not paths:
        fix = (f"write {folder / (stored + '.jsonl')}" + (", or set validation_split: null to hold out a "
               "fraction of train" if stored == spec.validation_split else ""))
        raise DataError(spec.name, stored, None, None, f"no file {folder / (stored + '.jsonl')} "
                        f"(nor {stored}-*.jsonl shards)", fix=fix)
    texts: list[str] = []
    rows = 0
    for path in paths:
        written = read_jsonl(path, spec.name, stored)  # bad JSON / UTF-8 fail naming file and line
        rows += len(written.rows)
        for row, line in zip(written.rows, written.lines, strict=True):
            text = _text_of(spec, stored, row, line, path)
            if text.strip():
                texts.append(text)
    return texts, rows, ", ".join(paths)


def _hub_texts(spec: CorpusSpec, stored: str) -> tuple[list[str], int, str]:
    import datasets

    origin = f"{spec.hub}{'/' + spec.config if spec.config else ''}:{stored}"
    try:
        dataset = datasets.load_dataset(spec.hub, spec.config, split=stored)
    except ValueError as err:
        if "split" not in str(err).lower():
            raise
        fix = "set validation_split: null to hold out a fraction of train" if stored == spec.validation_split else None
        raise DataError(spec.name, stored, None, None, f"{origin}: {err}", fix=fix) from None
    if spec.text_field not in dataset.column_names:
        raise DataError(spec.name, stored, None, spec.text_field, f"missing column (has {sorted(dataset.column_names)})",
                        fix=f"set text_field to the column holding the text ({origin})")
    texts: list[str] = []
    column = dataset[spec.text_field]
    for index, text in enumerate(column):
        if not isinstance(text, str):
            raise _not_a_string(spec, stored, index, text, None)
        if text.strip():
            texts.append(text)
    return texts, len(column), origin


def _text_of(spec: CorpusSpec, stored: str, row: dict[str, Any], line: int, path: str) -> str:
    if spec.text_field not in row:
        raise DataError(spec.name, stored, line, spec.text_field, f"missing field (has {sorted(row)})", path,
                        f"give every line a {spec.text_field!r} string, or set text_field")
    text = row[spec.text_field]
    if not isinstance(text, str):
        raise _not_a_string(spec, stored, line, text, path)
    return text


def _not_a_string(spec: CorpusSpec, stored: str, row: int, value: Any, path: str | None) -> DataError:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return DataError(spec.name, stored, row, spec.text_field,
                     f"the text must be a string, got {type(value).__name__} {shown}", path,
                     "write each document's text as one JSON string")


# The shipped corpora (folder corpora: they read their files whatever the job's data source).
for _spec in (
    CorpusSpec(name="recipes", folder=str(MINI_CORPORA_DIR / "recipes"),
               description="New domain: generated cooking recipes, a vocabulary the demo's pre-training never saw."),
    CorpusSpec(name="demo_pretrain", folder=str(MINI_CORPORA_DIR / "demo_pretrain"),
               description="Old domain: documents from the demo's pre-training generator (another seed)."),
):
    register_corpus(_spec)
BUILTIN_CORPORA = frozenset(CORPORA)  # registered in every process: a job need not carry them
