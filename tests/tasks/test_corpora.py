"""Raw-text corpora (ptft/tasks/corpora.py): the shipped minis, folder and hub corpora, held-out splits, errors."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest

from ptft.tasks import CorpusSpec, DataError, UnknownCorpusError, corpus_documents, get_corpus, list_corpora
from ptft.tasks.corpora import CORPORA, MINI_CORPORA_DIR, register_corpus
from ptft.tasks.mini import generate_corpora


@pytest.fixture
def registered():
    """Register corpora for one test and drop them afterwards (the registry is process-wide)."""
    names: list[str] = []

    def add(**fields) -> CorpusSpec:
        spec = register_corpus(CorpusSpec(**fields))
        names.append(spec.name)
        return spec

    yield add
    for name in names:
        CORPORA.pop(name, None)


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _docs(texts: list[str]) -> list[str]:
    return [json.dumps({"text": t}) for t in texts]


# ------------------------------------------------------------------------------------------ shipped minis
def test_shipped_recipes_equal_the_generator_output(tmp_path):
    written = generate_corpora.generate(tmp_path)
    for path in written:
        assert path.read_bytes() == (MINI_CORPORA_DIR / path.relative_to(tmp_path)).read_bytes(), path


def test_shipped_old_domain_sample_is_the_demo_generator_with_another_seed(tmp_path):
    from ptft.cli.demo.corpus import corpus_documents as demo_documents
    from ptft.cli.demo.pretrain import PretrainConfig

    docs = demo_documents(generate_corpora.OLD_DOMAIN_DOCS, seed=generate_corpora.OLD_DOMAIN_SEED)
    for path in generate_corpora.write_corpus("demo_pretrain", docs, generate_corpora.VALIDATION_DOCS, tmp_path):
        assert path.read_bytes() == (MINI_CORPORA_DIR / path.relative_to(tmp_path)).read_bytes(), path
    assert generate_corpora.OLD_DOMAIN_SEED != PretrainConfig().corpus_seed  # not the documents it trained on


def test_the_new_domain_shares_only_function_words_with_the_demo_pretraining():
    from ptft.cli.demo.corpus import corpus_documents as demo_documents

    def words(texts) -> set[str]:
        return set(re.findall(r"[a-z]+", " ".join(texts).lower()))

    demo = words(demo_documents(3000, seed=0))
    recipes = words(corpus_documents("recipes", "train").texts + corpus_documents("recipes", "validation").texts)
    assert recipes & demo <= {"a", "and", "in", "the", "to", "of", "with", "for", "on"}
    assert len(recipes) > 100


@pytest.mark.parametrize("name", ["recipes", "demo_pretrain"])
def test_shipped_corpora_have_train_and_validation(name):
    train, val = corpus_documents(name, "train"), corpus_documents(name, "validation")
    assert (train.counts["documents"], val.counts["documents"]) == (300, 60)
    assert not set(train.texts) & set(val.texts)
    assert corpus_documents(name, "train", limit=7).texts == train.texts[:7]
    assert train.checksum == corpus_documents(name, "train", source="mini").checksum  # folder: any source
    assert name in list_corpora() and get_corpus(name).folder


# ------------------------------------------------------------------------------------------ folder and hub
def test_folder_corpus_with_shards_and_a_held_out_fraction(tmp_path, registered):
    _write(tmp_path / "c" / "train-00000.jsonl", _docs([f"doc {i}" for i in range(20)]))
    _write(tmp_path / "c" / "train-00001.jsonl", _docs([f"doc {i}" for i in range(20, 40)] + ["  "]))
    registered(name="sharded", folder=str(tmp_path / "c"), validation_split=None, held_out_fraction=0.1)
    train, val = corpus_documents("sharded", "train"), corpus_documents("sharded", "validation")
    assert (len(train.texts), len(val.texts)) == (36, 4)
    assert sorted(train.texts + val.texts) == sorted(f"doc {i}" for i in range(40))
    assert train.counts["blank"] == 1 and train.counts["rows"] == 41
    assert corpus_documents("sharded", "validation").texts == val.texts  # seeded
    assert corpus_documents("sharded", "train", limit=5).texts == train.texts[:5]  # limit keeps the held-out out
    assert "held-out" in val.origin


def test_hub_corpus_loads_through_datasets_with_a_named_column(tmp_path, registered):
    # A local dataset folder is what datasets.load_dataset(hub_id) resolves first: the hub code path, offline.
    folder = tmp_path / "hubish"
    _write(folder / "train.jsonl", [json.dumps({"content": f"page {i}", "n": i}) for i in range(30)])
    registered(name="hubby", hub=str(folder), text_field="content", validation_split=None)
    train = corpus_documents("hubby", "train")
    assert len(train.texts) + len(corpus_documents("hubby", "validation").texts) == 30
    assert train.origin.startswith(str(folder)) and train.texts[0].startswith("page ")
    # The same corpus from a folder source reads <source>/<name>/<split>.jsonl instead.
    _write(tmp_path / "src" / "hubby" / "train.jsonl", [json.dumps({"content": "local 1"}),
                                                        json.dumps({"content": "local 2"})])
    assert set(corpus_documents("hubby", "train", source=str(tmp_path / "src")).texts) <= {"local 1", "local 2"}


def test_hub_corpus_errors_name_the_column_and_row(tmp_path, registered):
    folder = tmp_path / "hub2"
    _write(folder / "train.jsonl", [json.dumps({"content": "a"}), json.dumps({"content": None})])
    registered(name="no_column", hub=str(folder))
    with pytest.raises(DataError, match=r"field 'text': missing column \(has \['content'\]\)"):
        corpus_documents("no_column", "train")
    registered(name="null_text", hub=str(folder), text_field="content")
    with pytest.raises(DataError, match=r"row 1, field 'content': the text must be a string, got NoneType"):
        corpus_documents("null_text", "train")
    with pytest.raises(DataError, match="validation_split: null"):  # there is no validation split
        corpus_documents("null_text", "validation")


# ------------------------------------------------------------------------------------------ bad corpora
def test_an_empty_corpus_names_its_file(tmp_path, registered):
    _write(tmp_path / "e" / "train.jsonl", [])
    _write(tmp_path / "b" / "train.jsonl", _docs(["", "   \n"]))
    registered(name="empty", folder=str(tmp_path / "e"))
    registered(name="blank", folder=str(tmp_path / "b"))
    with pytest.raises(DataError, match=r"empty corpus: 0 row\(s\).*e/train\.jsonl"):
        corpus_documents("empty", "train")
    with pytest.raises(DataError, match=r"empty corpus: 2 row\(s\), no document with text"):
        corpus_documents("blank", "train")


def test_a_row_without_the_text_field_names_file_line_and_field(tmp_path, registered):
    path = _write(tmp_path / "m" / "train.jsonl", _docs(["fine"]) + [json.dumps({"body": "oops"})])
    registered(name="missing", folder=str(tmp_path / "m"))
    with pytest.raises(DataError) as info:
        corpus_documents("missing", "train")
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 2, "text")
    assert str(info.value).startswith(f"{path}:2: dataset 'missing', split 'train', line 2, field 'text': "
                                      "missing field (has ['body'])")
    assert pickle.loads(pickle.dumps(info.value)).args == info.value.args  # it crosses Ray


def test_a_text_that_is_not_a_string_names_its_line(tmp_path, registered):
    path = _write(tmp_path / "n" / "train.jsonl", _docs(["fine", "also fine"]) + [json.dumps({"text": 42})])
    registered(name="number", folder=str(tmp_path / "n"))
    with pytest.raises(DataError, match=re.escape(f"{path}:3:") + r".*field 'text': the text must be a string, "
                                        r"got int 42"):
        corpus_documents("number", "train")


def test_bad_json_and_a_missing_validation_file_are_clear(tmp_path, registered):
    _write(tmp_path / "j" / "train.jsonl", ['{"text": "ok"}', '{"text": '])
    registered(name="broken", folder=str(tmp_path / "j"))
    with pytest.raises(DataError, match=r"train\.jsonl:2: .*malformed JSON"):
        corpus_documents("broken", "train")
    _write(tmp_path / "v" / "train.jsonl", _docs(["a", "b"]))
    registered(name="no_val", folder=str(tmp_path / "v"))
    with pytest.raises(DataError, match=r"no file .*validation\.jsonl.*set validation_split: null"):
        corpus_documents("no_val", "validation")


def test_registry_names_are_checked(tmp_path, registered):
    with pytest.raises(UnknownCorpusError, match=r"unknown corpus 'recipe' \(did you mean 'recipes'\?\)"):
        get_corpus("recipe")
    assert isinstance(UnknownCorpusError("x"), KeyError)
    spec = registered(name="twice", folder=str(tmp_path))
    assert register_corpus(CorpusSpec(name="twice", folder=str(tmp_path))) is spec  # idempotent
    with pytest.raises(ValueError, match="already registered"):
        register_corpus(CorpusSpec(name="twice", folder=str(tmp_path / "other")))
    with pytest.raises(ValueError, match="'mnli' is a task"):
        register_corpus(CorpusSpec(name="mnli", folder=str(tmp_path)))
    with pytest.raises(ValueError, match="exactly one of folder and hub"):
        CorpusSpec(name="neither")
    with pytest.raises(ValueError, match="held_out_fraction"):
        CorpusSpec(name="frac", folder=str(tmp_path), held_out_fraction=1.5)
