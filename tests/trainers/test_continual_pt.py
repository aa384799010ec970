"""Continual pre-training (trainers/continual_pt.py) through the real loop (`train_worker`, DeepSpeed ZeRO-0,
gloo, world size 1) on a tiny OLMo first pre-trained here on the old domain (`demo_pretrain`), then trained
on the new one (`recipes`) with and without replay. Everything is seeded; the numbers in the comments are
what these runs print on CPU (docs/continual_pt.md §4)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from ptft.core.layout import TrainOutput
from ptft.core.tiny import TINY_ARCHITECTURES, build_tiny_model, train_tokenizer
from ptft.tasks import corpus_documents
from tests.training import Interrupt, InterruptingReporter
from trainers.collate import collate
from trainers.config import TrainConfig
from trainers.continual_pt import (
    ContinualPtObjective,
    draw_replay,
    held_out_loss,
    replay_count,
    tokenize_documents,
)
from trainers.examples import IGNORE_INDEX
from trainers.job import LocalReporter, TrainJob
from trainers.loss import token_losses
from trainers.objectives import ContinualPtConfig, ReplayConfig, objective_for
from trainers.sft import train_worker

CPT_STEPS = 30
NO_REPLAY = ContinualPtConfig(old_corpus="demo_pretrain")
WITH_REPLAY = ContinualPtConfig(replay=ReplayConfig(corpus="demo_pretrain", ratio=0.25))


def _job(model: str, out: str, dataset: str, objective: ContinualPtConfig, lr: float = 2e-3,
         **config: Any) -> TrainJob:
    defaults = dict(epochs=10, batch_size=4, grad_accum=1, max_length=256, val_size=40, warmup_ratio=0.1,
                    log_every=10, checkpoint_every=10, max_steps=CPT_STEPS, zero_stage=0, seed=42)
    return TrainJob(trial_id=f"cpt-{os.path.basename(out)}", cell_id="cell", model=model, dataset=dataset,
                    data_source="mini", lr=lr, config=TrainConfig(**{**defaults, **config}), objective=objective,
                    output_dir=out)


def _run(job: TrainJob) -> LocalReporter:
    reporter = LocalReporter(job)
    train_worker(job, reporter)
    return reporter


@pytest.fixture(scope="module")
def pretrained(dist_env, tmp_path_factory) -> tuple[str, dict[str, Any]]:
    """A tiny OLMo whose tokenizer and weights know only the old domain: continual_pt on demo_pretrain from
    random init (100 steps), measuring the recipes corpus as its "old" one, i.e. before it ever saw it."""
    root = tmp_path_factory.mktemp("cpt-pretrain")
    init = build_tiny_model(str(root / "init"), texts=list(corpus_documents("demo_pretrain").texts), seed=0)
    job = _job(init, str(root / "pre"), "demo_pretrain", ContinualPtConfig(old_corpus="recipes"), lr=3e-3,
               max_steps=100, log_every=100, checkpoint_every=None)
    metrics = _run(job).history[-1]
    return os.path.join(job.output_dir, "model"), metrics


@pytest.fixture(scope="module")
def runs(pretrained, tmp_path_factory) -> dict[str, tuple[TrainJob, LocalReporter]]:
    model, _ = pretrained
    root = tmp_path_factory.mktemp("cpt-runs")
    out = {}
    for name, objective in (("no_replay", NO_REPLAY), ("replay", WITH_REPLAY)):
        job = _job(model, str(root / name), "recipes", objective)
        out[name] = (job, _run(job))
    return out


@pytest.fixture(scope="module")
def tokenizer_of(pretrained):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(pretrained[0])


# ------------------------------------------------------------------------------------------ data
def test_packing_isolates_documents(pretrained, tokenizer_of):
    """A packed row's per-document losses equal each document's loss alone (and would not without the
    position restarts: the check can fail)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(pretrained[0]).eval()
    job = _job(pretrained[0], "/unused", "recipes", WITH_REPLAY)
    data = objective_for(job.objective).load_data(job, tokenizer_of)
    row = next(r for r in data.rows if len(r) >= 3)
    packed = collate([row], tokenizer_of.pad_token_id)

    def losses(batch) -> torch.Tensor:
        with torch.no_grad():
            logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
        return token_losses(logits, batch.labels)[0]

    row_losses, start = losses(packed), 0
    contiguous = collate([row], tokenizer_of.pad_token_id)
    contiguous.position_ids = torch.arange(contiguous.input_ids.shape[1]).unsqueeze(0)
    leaky_losses = losses(contiguous)
    leaked = False
    for chunk in row:
        alone = losses(collate([[chunk]], tokenizer_of.pad_token_id))
        torch.testing.assert_close(row_losses[start:start + len(chunk) - 1], alone, rtol=1e-4, atol=1e-5)
        if start > 0:
            leaked |= not torch.allclose(leaky_losses[start:start + len(chunk) - 1], alone, atol=1e-3)
        start += len(chunk)
    assert leaked


def test_labels_cover_every_token_but_each_documents_first(tokenizer_of):
    job = _job("/unused", "/unused", "recipes", WITH_REPLAY)
    data = objective_for(job.objective).load_data(job, tokenizer_of)
    row = next(r for r in data.rows if len(r) >= 2)
    batch = collate([row], tokenizer_of.pad_token_id)
    expected, start = batch.input_ids[0].clone(), 0
    expected[sum(len(c) for c in row):] = IGNORE_INDEX  # padding
    for chunk in row:
        expected[start] = IGNORE_INDEX  # not predicted from the previous document's eos
        assert batch.position_ids[0, start] == 0
        start += len(chunk)
    assert torch.equal(batch.labels[0], expected)
    assert all(c.labels[1:] == c.input_ids[1:] for c in data.train.examples)  # no prompt masking
    eos = tokenizer_of.eos_token_id
    ends = [c.input_ids[-1] for c in data.train.examples if c.example_id.endswith("#0")
            and len(c) < job.config.max_length]
    assert ends and all(e == eos for e in ends)  # documents end with eos


def test_long_documents_are_cut_into_max_length_chunks(tokenizer_of):
    text = corpus_documents("recipes").texts[0]
    ids = tokenizer_of(text, add_special_tokens=False)["input_ids"] + [tokenizer_of.eos_token_id]
    chunks = tokenize_documents([("doc", text)], tokenizer_of, max_length=16)
    assert [len(c) for c in chunks.examples[:-1]] == [16] * (len(chunks.examples) - 1)
    assert [t for c in chunks.examples for t in c.input_ids] == ids
    assert all(c.labels == (IGNORE_INDEX, *c.input_ids[1:]) for c in chunks.examples)
    assert chunks.counts["split_documents"] == 1 and chunks.counts["documents"] == 1


def test_a_tokenizer_that_adds_bos_starts_each_document_with_it():
    conventions = TINY_ARCHITECTURES["llama"].tokenizer
    tokenizer = train_tokenizer(["Chop the onions finely."], vocab_size=300, conventions=conventions)
    (chunk,) = tokenize_documents([("d", "Chop the onions.")], tokenizer, max_length=64).examples
    assert chunk.input_ids[0] == tokenizer.bos_token_id and chunk.input_ids[-1] == tokenizer.eos_token_id
    assert chunk.labels[0] == IGNORE_INDEX and chunk.labels[1] == chunk.input_ids[1]  # the text's first token


def test_replay_is_mixed_at_the_ratio_seeded_and_deterministic(tokenizer_of):
    assert replay_count(300, 0.25) == 100 and replay_count(300, 0.5) == 300 and replay_count(3, 0.01) == 1
    picks = draw_replay(10, 25, seed=1)
    assert len(picks) == 25 and sorted(picks[:10]) == list(range(10))  # repeats only past one full pass
    assert picks == draw_replay(10, 25, seed=1) != draw_replay(10, 25, seed=2)

    job = _job("/unused", "/unused", "recipes", WITH_REPLAY)
    first = objective_for(job.objective).load_data(job, tokenizer_of)
    again = objective_for(job.objective).load_data(job, tokenizer_of)
    assert first.rows == again.rows and first.checksum == again.checksum
    docs = {c.example_id.split("#")[0] for c in first.train.examples}
    replayed = {d for d in docs if d.startswith("replay:demo_pretrain/")}
    assert len(replayed) == 100 and len(docs - replayed) == 300
    assert first.train.counts["replay_documents"] / first.train.counts["documents"] == 0.25
    other_seed = job.model_copy(update={"config": job.config.model_copy(update={"seed": 7})})
    assert objective_for(other_seed.objective).load_data(other_seed, tokenizer_of).checksum != first.checksum
    with_replay = [i for i, r in enumerate(first.rows) if any(c.example_id.startswith("replay:") for c in r)]
    quarter = len(first.rows) // 4  # packing's seeded order spreads replay through the rows, not at the end
    assert with_replay[0] < quarter and with_replay[-1] >= 3 * quarter
    assert any(len({c.example_id.startswith("replay:") for c in first.rows[i]}) == 2 for i in with_replay)


def test_held_out_loss_is_the_unpacked_token_mean(pretrained, tokenizer_of):
    from transformers import AutoModelForCausalLM

    from trainers.objectives import validation_loss

    model = AutoModelForCausalLM.from_pretrained(pretrained[0])
    job = _job(pretrained[0], "/unused", "recipes", NO_REPLAY)
    data = ContinualPtObjective(job.objective).load_data(job, tokenizer_of)
    chunks = data.val.sets["recipes"].examples
    packed = held_out_loss(model, chunks, tokenizer_of.pad_token_id, batch_size=4)
    assert packed == pytest.approx(validation_loss(model, chunks, tokenizer_of.pad_token_id, 4), rel=1e-5)


# ------------------------------------------------------------------------------------------ training
def test_continual_pt_lowers_the_new_corpus_held_out_perplexity(pretrained, runs):
    _, before = pretrained
    recipes_ppl_before = before["old_ppl"]  # the pre-training run measured recipes as its "old" corpus
    for name, (_, reporter) in runs.items():
        after = reporter.history[-1]
        # before ~426, after ~25 (both runs)
        assert after["val_ppl"] < recipes_ppl_before / 4, name
        assert after["val_ppl"] == pytest.approx(torch.tensor(after["val_loss"]).exp().item(), rel=1e-6)


def test_replay_keeps_the_old_domain_perplexity_lower(pretrained, runs):
    _, before = pretrained
    old_before = before["val_ppl"]  # demo_pretrain's held-out ppl at the start of both runs (~5.8)
    no_replay = runs["no_replay"][1].history[-1]["old_ppl"]  # ~24: forgetting
    replay = runs["replay"][1].history[-1]["old_ppl"]  # ~9.8
    assert old_before < replay < no_replay
    assert no_replay > 1.5 * replay


def test_manifest_records_the_corpora_and_the_replay(runs):
    import json

    job, reporter = runs["replay"]
    manifest = json.loads(open(TrainOutput(job.output_dir).manifest).read())
    data = manifest["data"]
    assert data["template_version"] == "continual_pt/1" and data["objective"] == "continual_pt"
    assert data["corpus"]["checksum"] == corpus_documents("recipes", "train").checksum
    assert data["corpus"]["documents"] == 300
    assert data["replay"]["corpus"] == "demo_pretrain" and data["replay"]["documents"] == 100
    assert data["replay"]["pool"]["checksum"] == corpus_documents("demo_pretrain", "train").checksum
    assert set(data["held_out"]) == {"recipes", "demo_pretrain"}
    assert data["held_out"]["recipes"]["documents"] == 40  # val_size caps held-out documents
    assert data["train"]["replay_documents"] == 100 and data["val"]["documents"] == 40
    assert manifest["val_loss"] == reporter.history[-1]["val_loss"]
    assert manifest["metrics"]["old_ppl"] == reporter.history[-1]["old_ppl"]
    assert manifest["job"]["objective"] == {"kind": "continual_pt", "replay": {"corpus": "demo_pretrain",
                                            "ratio": 0.25}, "old_corpus": None, "eval_corpora": []}


def test_resume_mid_run_equals_the_uninterrupted_run(runs, tmp_path):
    from safetensors.torch import load_file

    straight_job, straight = runs["replay"]
    job = straight_job.model_copy(update={"output_dir": str(tmp_path / "resumed")})
    with pytest.raises(Interrupt):
        train_worker(job, InterruptingReporter(job, at=10))
    resumed = _run(job)
    assert [m["step"] for m in resumed.history] == [20, 30]
    by_step = {m["step"]: m for m in straight.history}
    for m in resumed.history:
        for key in ("loss", "val_loss", "old_ppl"):
            assert m[key] == pytest.approx(by_step[m["step"]][key], rel=1e-6), (m["step"], key)
    a = load_file(os.path.join(straight_job.output_dir, "model", "model.safetensors"))
    b = load_file(os.path.join(job.output_dir, "model", "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-6)


def test_eval_corpora_report_their_own_perplexity(pretrained, tokenizer_of, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(pretrained[0])
    objective = ContinualPtObjective(ContinualPtConfig(eval_corpora=("demo_pretrain",)))
    job = _job(pretrained[0], "/unused", "recipes", objective.config)
    metrics = objective.validate(model, objective.load_data(job, tokenizer_of), tokenizer_of.pad_token_id, 8)
    assert set(metrics) == {"val_loss", "val_ppl", "ppl/demo_pretrain"}  # no old domain: no old_ppl
    assert metrics["ppl/demo_pretrain"] == pytest.approx(pretrained[1]["val_ppl"], rel=1e-5)


def test_every_config_field_defines_the_result():
    from ptft.core.identity import defining_fields, undeclared_fields

    for cls in (ContinualPtConfig, ReplayConfig):
        assert undeclared_fields(cls) == [] and defining_fields(cls) == list(cls.model_fields), cls.__name__
    assert WITH_REPLAY.old_domain() == "demo_pretrain" and NO_REPLAY.old_domain() == "demo_pretrain"
    assert ContinualPtConfig().old_domain() is None
    assert WITH_REPLAY.corpora("recipes") == ("recipes", "demo_pretrain")
    with pytest.raises(ValueError, match="ratio"):
        ReplayConfig(corpus="demo_pretrain", ratio=1.0)


def test_the_manifest_has_the_input_models_held_out_metrics_too(pretrained, runs, tmp_path):
    import json

    _, before = pretrained
    job, reporter = runs["replay"]
    stored = json.loads(open(TrainOutput(job.output_dir).manifest).read())["data"]["before"]
    # the input model on the new corpus (recipes, ~426) and the old one (demo_pretrain, ~5.8), as the
    # pre-training run measured them, then the stage's own end
    assert stored["val_ppl"] == pytest.approx(before["old_ppl"], rel=1e-4)
    assert stored["old_ppl"] == pytest.approx(before["val_ppl"], rel=1e-4)
    assert reporter.history[-1]["val_ppl"] < stored["val_ppl"] and reporter.history[-1]["old_ppl"] > stored["old_ppl"]
    # A resumed run reads them back (its weights are no longer the input model's).
    resumed = job.model_copy(update={"output_dir": str(tmp_path / "again")})
    with pytest.raises(Interrupt):
        train_worker(resumed, InterruptingReporter(resumed, at=10))
    _run(resumed)
    again = json.loads(open(TrainOutput(resumed.output_dir).manifest).read())["data"]["before"]
    assert again == stored
