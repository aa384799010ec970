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


# ------------------------------------------------------------------ families against recorded listings
# tests/study/data/*.json: branch listings reconstructed from each family's documented naming (each file says
# so); `RevisionResolver` gets them where it would call `list_repo_refs`.
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from ptft.study.checkpoints import (  # noqa: E402
    FAMILIES,
    PYTHIA_TOKENS_PER_STEP,
    detect_family,
    family_for,
    pattern_family,
    step_from_revision,
)

DATA = Path(__file__).parent / "data"
LISTINGS = {name: json.loads((DATA / f"{name}.json").read_text()) for name in
            ("pythia-160m", "olmo-1b-hf", "olmo-2-0425-1b", "smollm2-1.7b-intermediate", "amber")}


def recorded(calls=None) -> RevisionResolver:
    by_repo = {listing["repo"]: listing["branches"] for listing in LISTINGS.values()}

    def list_branches(model_id):
        if calls is not None:
            calls.append(model_id)
        return by_repo[model_id]
    return RevisionResolver(list_branches)


def test_listings_say_they_are_reconstructed():
    for listing in LISTINGS.values():
        assert listing["source"] == "reconstructed" and "not downloaded" in listing["note"]
        assert "main" in listing["branches"] and len(set(listing["branches"])) == len(listing["branches"])


@pytest.mark.parametrize("repo, family", [
    ("EleutherAI/pythia-160m", "pythia"), ("EleutherAI/pythia-1.4b-deduped", "pythia"),
    ("allenai/OLMo-1B-hf", "olmo"), ("allenai/OLMo-7B-0724-hf", "olmo"),
    ("allenai/OLMo-2-0425-1B", "olmo2"), ("allenai/OLMo-2-1124-7B", "olmo2"), ("allenai/Olmo-3-1025-7B", "olmo3"),
    ("HuggingFaceTB/SmolLM2-1.7B-intermediate-checkpoints", "smollm2"),
    ("LLM360/Amber", None), ("org/my-model", None), ("/tmp/models/olmo-ish", None),
])
def test_family_detected_from_repo_id(repo, family):
    assert detect_family(repo) == family
    assert family_for(repo).name == (family or "steps")


@pytest.mark.parametrize("repo, step, revision", [
    ("EleutherAI/pythia-160m", 143000, "step143000"),
    ("EleutherAI/pythia-160m", 1, "step1"),  # exact: never step1000 or step10000
    ("EleutherAI/pythia-160m", 0, "step0"),
    ("EleutherAI/pythia-160m", 512, "step512"),
    ("allenai/OLMo-1B-hf", 738020, "step738020-tokens3094B"),
    ("allenai/OLMo-1B-hf", 20000, "step20000-tokens84B"),  # rounded; its neighbours are floored
    ("allenai/OLMo-1B-hf", 10000, "step10000-tokens41B"),
    ("allenai/OLMo-2-0425-1B", 140000, "stage1-step140000-tokens294B"),  # a bare step is stage 1
    ("allenai/OLMo-2-0425-1B", 1000, "stage1-step1000-tokens2B"),  # not any stage-2 ingredient's step1000
    ("HuggingFaceTB/SmolLM2-1.7B-intermediate-checkpoints", 125000, "step-125000"),
])
def test_each_family_resolves_against_its_listing(repo, step, revision):
    assert recorded().resolve_step(repo, step) == revision
    assert recorded().resolve(repo, parse_checkpoint(step)) == (repo, revision)


def test_token_suffixes_are_matched_not_computed():
    branches = LISTINGS["olmo-1b-hf"]["branches"]
    olmo = FAMILIES["olmo"]
    # a step x tokens-per-step rule would get at least one of these wrong
    ratios = {olmo.tokens_of(b) / olmo.step_of(b) for b in branches if b != "main"}
    assert len(ratios) > 1
    assert olmo.revision_for(592000, branches) == "step592000-tokens2484B"


def test_olmo2_stage2_ingredients_by_mapping_and_by_revision():
    r = recorded()
    repo = "allenai/OLMo-2-0425-1B"
    ref = parse_checkpoint({"step": 23852, "stage": 2, "ingredient": 3})
    assert (ref.kind, ref.label, ref.stage, ref.ingredient) == ("step", "stage2-ingredient3-step23852", 2, 3)
    assert r.resolve(repo, ref) == (repo, "stage2-ingredient3-step23852-tokens51B")
    assert r.resolve_step(repo, 5000, stage=2, ingredient=1) == "stage2-ingredient1-step5000-tokens11B"
    assert r.resolve_step(repo, 140000, stage=1) == "stage1-step140000-tokens294B"
    raw = parse_checkpoint("stage2-ingredient2-step1000-tokens3B")
    assert (raw.kind, raw.step, raw.stage, raw.ingredient) == ("revision", 1000, 2, 2)
    assert r.resolve(repo, raw) == (repo, "stage2-ingredient2-step1000-tokens3B")
    with pytest.raises(CheckpointResolutionError, match=r"stage 2.*for step 1000; it has .*stage 2, ingredient 1"):
        r.resolve_step(repo, 1000, stage=2)  # stage 2 has only ingredients
    with pytest.raises(CheckpointResolutionError, match=r"ingredient 4.*it has"):
        r.resolve_step(repo, 1000, stage=2, ingredient=4)
    with pytest.raises(ValueError, match="needs its 'stage'"):
        parse_checkpoint({"step": 1000, "ingredient": 1})


def test_stage_on_a_family_without_stages_is_refused():
    with pytest.raises(CheckpointResolutionError, match="pythia checkpoints have no stages"):
        recorded().resolve("EleutherAI/pythia-160m", parse_checkpoint({"step": 1000, "stage": 1}))


@pytest.mark.parametrize("repo, step, nearest", [
    ("EleutherAI/pythia-160m", 1500, [128, 256, 512, 1000, 2000]),
    ("EleutherAI/pythia-160m", 3, [0, 1, 2, 4, 8]),
    ("allenai/OLMo-1B-hf", 18500, [16000, 17000, 18000, 19000, 20000]),
    ("allenai/OLMo-2-0425-1B", 145000, [120000, 130000, 140000, 150000, 160000]),
    ("HuggingFaceTB/SmolLM2-1.7B-intermediate-checkpoints", 130000, [125000, 250000, 375000, 500000, 625000]),
])
def test_missing_step_lists_the_nearest_of_its_family(repo, step, nearest):
    with pytest.raises(CheckpointResolutionError) as info:
        recorded().resolve_step(repo, step)
    msg = str(info.value)
    assert f"{repo!r} has no revision for step {step}" in msg
    listed = json.loads(msg.rsplit("nearest existing steps: ", 1)[1])
    assert listed == nearest


def test_missing_stage2_step_lists_that_ingredients_steps():
    with pytest.raises(CheckpointResolutionError, match=r"\(stage 2, ingredient 1\); nearest existing steps: "
                                                        r"\[20000, 21000, 22000, 23000, 23852\]"):
        recorded().resolve_step("allenai/OLMo-2-0425-1B", 30000, stage=2, ingredient=1)


@pytest.mark.parametrize("family, revision, tokens", [
    ("olmo", "step738020-tokens3094B", 3094.0),
    ("olmo", "step1000-tokens4B", 4.0),
    ("olmo2", "stage1-step140000-tokens294B", 294.0),
    ("olmo2", "stage2-ingredient1-step5000-tokens11B", 11.0),
    ("olmo3", "stage1-step1000", None),  # OLMo-3 names no tokens
    ("pythia", "step143000", 143000 * 2_097_152 / 1e9),
    ("pythia", "step0", 0.0),
    ("smollm2", "step-125000", None),
    ("pythia", "main", None),
])
def test_tokens_seen(family, revision, tokens):
    assert FAMILIES[family].tokens_of(revision) == (pytest.approx(tokens) if tokens is not None else None)


def test_tokens_seen_through_the_resolver():
    r = recorded()
    pythia, olmo = "EleutherAI/pythia-160m", "allenai/OLMo-1B-hf"
    step = parse_checkpoint(2000)
    assert r.tokens_seen(pythia, step, r.resolve(pythia, step)[1]) == pytest.approx(2000 * PYTHIA_TOKENS_PER_STEP / 1e9)
    assert r.tokens_seen(pythia, step, None) == pytest.approx(4.194304)  # offline: the fixed batch suffices
    assert r.tokens_seen(olmo, step, r.resolve(olmo, step)[1]) == 8.0
    assert r.tokens_seen(olmo, step, None) is None  # OLMo's tokens are only in the branch name
    assert r.tokens_seen(olmo, parse_checkpoint("main"), "main") is None


def test_step_of_each_naming():
    assert FAMILIES["pythia"].step_of("step143000") == 143000
    assert FAMILIES["pythia"].step_of("step143000-tokens300B") is None
    assert FAMILIES["smollm2"].step_of("step-125000") == 125000
    assert FAMILIES["olmo2"].step_of("stage2-ingredient3-step23852-tokens51B") == 23852
    assert FAMILIES["olmo2"].step_of("main") is None
    # what the spec derives for curves from a revision it names, in any built-in naming
    assert [step_from_revision(r) for r in ("step1000-tokens4B", "stage1-step140000-tokens294B", "step-125000",
                                            "step143000", "main", "ckpt_001")] == [1000, 140000, 125000, 143000,
                                                                                   None, None]


def test_revision_pattern_format_string():
    amber = pattern_family("ckpt_{step:03d}")
    branches = LISTINGS["amber"]["branches"]
    assert amber.revision_for(7, branches) == "ckpt_007"
    assert amber.revision_for(358, branches) == "ckpt_358"
    assert amber.step_of("ckpt_120") == 120 and amber.step_of("ckpt_12a") is None
    with pytest.raises(CheckpointResolutionError, match=r"nearest existing steps: \[354, 355, 356, 357, 358\]"):
        amber.revision_for(400, branches, repo="LLM360/Amber")
    r = RevisionResolver(lambda repo: branches, families={"LLM360/Amber": family_for("LLM360/Amber",
                                                                                     revision_pattern="ckpt_{step:03d}")})
    assert r.resolve("LLM360/Amber", parse_checkpoint(42)) == ("LLM360/Amber", "ckpt_042")
    assert family_for("LLM360/Amber").revision_for  # undeclared, it gets the generic rule...
    with pytest.raises(CheckpointResolutionError, match="no branch is named like"):
        RevisionResolver(lambda repo: branches).resolve_step("LLM360/Amber", 42)  # ...which finds nothing


def test_revision_pattern_regex_and_tokens():
    fam = pattern_family(r"iter_(?P<step>\d{7})-(?P<tokens>\d+)B")
    assert fam.revision_for(2000, ["iter_0001000-4B", "iter_0002000-8B", "main"]) == "iter_0002000-8B"
    assert fam.tokens_of("iter_0002000-8B") == 8.0
    with_batch = family_for("org/m", revision_pattern="ckpt-{step}", tokens_per_step=1_000_000)
    assert with_batch.tokens_of("ckpt-3000") == 3.0
    placeholders = pattern_family("s{stage}-step{step}-t{tokens}B")
    assert placeholders.revision_for(10, ["s1-step10-t1B", "s2-step10-t9B"], stage=2) == "s2-step10-t9B"


@pytest.mark.parametrize("pattern, message", [
    ("ckpt_", "has no step"), ("", "empty"), ("ckpt_{iteration}", "unknown placeholder"),
    ("ckpt_{step}_{step}", "appears twice"), ("ckpt_{step:x}", "malformed"), ("ckpt_{step", "malformed"),
    (r"ckpt_(?P<step>\d+", "not a valid regex"), (r"(?P<step>\d+)-(?P<epoch>\d+)", "unknown group"),
])
def test_bad_revision_patterns_say_why(pattern, message):
    with pytest.raises(ValueError, match=message):
        pattern_family(pattern)


def test_declared_family_overrides_detection_and_unknown_names_suggest():
    assert family_for("org/pythia-like-but-olmo", declared="olmo").name == "olmo"
    with pytest.raises(ValueError, match=r"unknown checkpoint family 'pythai' \(did you mean 'pythia'\?\)"):
        family_for("org/m", declared="pythai")
    with pytest.raises(ValueError, match="not both"):
        family_for("org/m", declared="olmo", revision_pattern="step{step}")
    r = RevisionResolver(lambda repo: ["step5", "step5-tokens1B"], families={"org/m": family_for("org/m", "pythia")})
    assert r.resolve_step("org/m", 5) == "step5"  # exact, as Pythia names them; the generic rule: ambiguous
    with pytest.raises(CheckpointResolutionError, match="several revisions"):
        RevisionResolver(lambda repo: ["step5", "step5-tokens1B"]).resolve_step("org/m", 5)


def test_identity_unchanged_for_earlier_specs_and_stage_defines_it():
    assert parse_checkpoint(1000).identity() == {"kind": "step", "step": 1000, "revision": None, "path": None}
    assert parse_checkpoint("step1000-tokens4B").identity() == {
        "kind": "revision", "step": 1000, "revision": "step1000-tokens4B", "path": None}
    a = parse_checkpoint({"step": 1000, "stage": 2, "ingredient": 1}).identity()
    b = parse_checkpoint({"step": 1000, "stage": 2, "ingredient": 2}).identity()
    assert a != b and a["stage"] == 2 and a["ingredient"] == 1
