"""Checkpoint parsing and step -> revision resolution, with an injected branch listing."""

import time

import pytest

from ptft.study.checkpoints import CheckpointResolutionError, RevisionResolver, parse_checkpoint

BRANCHES = ["main", "step1000-tokens4B", "step10000-tokens41B", "step20000-tokens84B",
            "step738000-tokens3094B", "step738020-tokens3095B"]


def resolver(calls=None):
    def list_branches(model_id):
        if calls is not None:
            calls.append(model_id)
        return BRANCHES
    return RevisionResolver(list_branches)


def test_parse_forms():
    assert parse_checkpoint(1000).kind == "step" and parse_checkpoint(1000).label == "1000"
    assert parse_checkpoint("1000").step == 1000
    assert parse_checkpoint("main").revision == "main"
    rev = parse_checkpoint("step1000-tokens4B")
    assert (rev.kind, rev.step, rev.revision) == ("revision", 1000, "step1000-tokens4B")
    local = parse_checkpoint("./ckpts/step300")
    assert (local.kind, local.step, local.label) == ("local", 300, "step300")
    named = parse_checkpoint({"path": "/x/y", "step": 5, "name": "early"})
    assert (named.kind, named.step, named.label) == ("local", 5, "early")
    for bad in (True, -1, "", {"path": "a", "revision": "b"}, {"foo": 1}, 1.5):
        with pytest.raises(ValueError):
            parse_checkpoint(bad)


def test_step_resolves_by_prefix_not_substring():
    r = resolver()
    assert r.resolve_step("allenai/OLMo-1B-hf", 1000) == "step1000-tokens4B"
    assert r.resolve_step("allenai/OLMo-1B-hf", 738000) == "step738000-tokens3094B"


def test_missing_step_lists_nearest():
    with pytest.raises(CheckpointResolutionError) as info:
        resolver().resolve_step("allenai/OLMo-1B-hf", 18000)
    msg = str(info.value)
    assert "no revision for step 18000" in msg and "20000" in msg and "10000" in msg


def test_listing_is_cached_per_model():
    calls = []
    r = resolver(calls)
    r.resolve_step("m", 1000)
    r.resolve_step("m", 10000)
    assert calls == ["m"]


def test_resolve_kinds(tmp_path):
    r = resolver()
    assert r.resolve("allenai/OLMo-1B-hf", parse_checkpoint(1000)) == ("allenai/OLMo-1B-hf", "step1000-tokens4B")
    assert r.resolve("allenai/OLMo-1B-hf", parse_checkpoint("main")) == ("allenai/OLMo-1B-hf", "main")
    assert r.resolve("allenai/OLMo-1B-hf", parse_checkpoint("step20000-tokens84B"))[1] == "step20000-tokens84B"
    (tmp_path / "ck").mkdir()
    path, rev = r.resolve("allenai/OLMo-1B-hf", parse_checkpoint("./ck"), base_dir=str(tmp_path))
    assert path == str(tmp_path / "ck") and rev is None
    with pytest.raises(CheckpointResolutionError, match="does not exist"):
        r.resolve("m", parse_checkpoint("./missing"), base_dir=str(tmp_path))
    with pytest.raises(CheckpointResolutionError, match="local directory"):
        r.resolve(str(tmp_path), parse_checkpoint(1000))


def test_offline_fails_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(CheckpointResolutionError, match="HF_HUB_OFFLINE=1"):
        RevisionResolver().resolve_step("allenai/OLMo-1B-hf", 1000)
    assert time.monotonic() - start < 5


def test_listing_errors_name_the_model():
    def broken(model_id):
        raise ConnectionError("no route")
    with pytest.raises(CheckpointResolutionError, match="'org/model'.*ConnectionError: no route"):
        RevisionResolver(broken).resolve_step("org/model", 1)


def test_hub_token_read_by_name(monkeypatch):
    import huggingface_hub

    seen = {}

    class Refs:
        branches = [type("B", (), {"name": "step5-tokens1B"})()]

    def fake_list_repo_refs(repo_id, token=None):
        seen.update(repo_id=repo_id, token=token)
        return Refs()

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setattr(huggingface_hub, "list_repo_refs", fake_list_repo_refs)
    assert RevisionResolver().resolve_step("org/m", 5) == "step5-tokens1B"
    assert seen == {"repo_id": "org/m", "token": "hf_secret"}
