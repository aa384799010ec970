"""Seeded sampling in the batched engine, and rejection sampling's sample-score-keep step on the tiny model."""

from __future__ import annotations

import json
import os

import pytest

from evals.generation import Sampling, generate, sample
from evals.rejection import (
    RejectionConfig,
    Scored,
    is_done,
    kept_declaration,
    label_match,
    reward_function,
    sample_and_score,
    sample_seed,
    select_best,
)
from evals.requests import GenerationRequest

PROMPTS = [
    "### Input: The quick brown fox jumps over the lazy dog.\n ### Summary: ",
    "Question: what is two plus two?\nAnswer:",
    "A",
    "Consider the following texts: Text 1: A man plays a guitar. Text 2: A man reads. The relation is ",
]


def _requests(copies: int = 3, max_new_tokens: int = 12) -> list[GenerationRequest]:
    return [GenerationRequest(context=p, max_new_tokens=max_new_tokens) for p in PROMPTS for _ in range(copies)]


def _texts(results) -> list[tuple[str, int]]:
    return [(r.raw_text, r.num_tokens) for r in results]


def test_same_seeds_same_samples_whatever_the_batch(tiny_lm):
    requests = _requests()
    seeds = [sample_seed(7, str(i // 3), i % 3) for i in range(len(requests))]
    sampling = Sampling(temperature=1.0, top_p=0.95)
    one = sample(tiny_lm, requests, sampling, seeds, batch_size=1)
    eight = sample(tiny_lm, requests, sampling, seeds, batch_size=8)
    again = sample(tiny_lm, requests, sampling, seeds, batch_size=8)
    assert _texts(one) == _texts(eight) == _texts(again)
    # a request's draw depends on its seed only: alone, reversed, it samples the same
    alone = sample(tiny_lm, requests[::-1], sampling, seeds[::-1], batch_size=5)
    assert _texts(alone)[::-1] == _texts(one)
    # copies of one prompt are separate samples, and at temperature 1 a random model's differ
    assert len({r.raw_text for r in one[:3]}) > 1


def test_another_seed_draws_other_samples(tiny_lm):
    requests = _requests()
    sampling = Sampling(temperature=1.0)
    first = sample(tiny_lm, requests, sampling, [sample_seed(0, str(i), 0) for i in range(len(requests))])
    other = sample(tiny_lm, requests, sampling, [sample_seed(1, str(i), 0) for i in range(len(requests))])
    assert _texts(first) != _texts(other)


@pytest.mark.parametrize("sampling", [Sampling(temperature=1e-6), Sampling(temperature=1.0, top_p=1e-9)])
def test_the_greedy_limit(tiny_lm, sampling):
    requests = _requests(copies=1, max_new_tokens=16)
    greedy = generate(tiny_lm, requests, batch_size=4)
    sampled = sample(tiny_lm, requests, sampling, list(range(len(requests))), batch_size=4)
    assert _texts(sampled) == _texts(greedy)


def test_bad_sampling_settings():
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=1.5)


def test_rewards_best_of_n_and_threshold():
    rouge = reward_function("rougeL")
    assert rouge("the cat sat", "the cat sat") == 1.0 and rouge("dog", "the cat sat") == 0.0
    assert reward_function("exact_match")("The Cat.", "cat") == 1.0
    assert label_match(" entailment\nmore", "entailment") == 1.0 and label_match("entail", "entailment") == 0.0
    with pytest.raises(ValueError, match="unknown reward 'bleu'; choose from rougeL, exact_match, f1, label"):
        reward_function("bleu")
    scored = [Scored("a", 0, "x", 0.2), Scored("a", 1, "y", 0.9), Scored("a", 2, "z", 0.9),  # tie: sample 1
              Scored("b", 0, "  ", 1.0), Scored("b", 1, "w", 0.3),  # an empty text is never kept
              Scored("c", 0, "v", 0.1), Scored("c", 1, "", 0.0)]
    kept = select_best(scored, threshold=None)
    assert {pid: s.sample for pid, s in kept.items()} == {"a": 1, "b": 1, "c": 0}
    assert {pid: s.sample for pid, s in select_best(scored, threshold=0.3).items()} == {"a": 1, "b": 1}
    assert select_best(scored, threshold=0.95) == {}


def test_stage_data_files_marker_and_rerun(tiny_lm, tmp_path):
    out = str(tmp_path / "stage")
    config = RejectionConfig(dataset="xsum", samples=3, temperature=1.0, seed=3, reward="rougeL", prompts=4,
                             max_new_tokens=8, threshold=0.0)
    summary = sample_and_score("unused", config, out, source="mini", lm=tiny_lm, batch_size=5)
    assert is_done(out)
    assert summary["prompts"] == 4 and summary["samples"] == 12
    samples = [json.loads(line) for line in open(os.path.join(out, "samples.jsonl"))]
    kept = [json.loads(line) for line in open(os.path.join(out, "kept.jsonl"))]
    assert len(samples) == 12 and sum(s["kept"] for s in samples) == len(kept) == summary["kept"]
    assert summary["kept_fraction"] == len(kept) / 4
    best = {}
    for s in samples:
        best[s["prompt_id"]] = max(best.get(s["prompt_id"], s["score"]), s["score"])
    assert summary["mean_best_score"] == pytest.approx(sum(best.values()) / 4)
    # a rerun reads the marker and redoes nothing; the same draws come back with another batch size
    before = os.path.getmtime(os.path.join(out, "samples.jsonl"))
    assert sample_and_score("unused", config, out, source="mini", lm=tiny_lm) == summary
    assert os.path.getmtime(os.path.join(out, "samples.jsonl")) == before
    # a marker whose files are gone is not trusted: the work is redone, to the same samples
    os.remove(os.path.join(out, "kept.jsonl"))
    assert not is_done(out)
    redone = sample_and_score("unused", config, out, source="mini", lm=tiny_lm, batch_size=2)
    assert redone == summary
    assert [json.loads(line) for line in open(os.path.join(out, "samples.jsonl"))] == samples


def test_the_kept_set_renders_as_the_sft_input(tmp_path):
    """A kept row renders as the prompt SFT on the original task feeds: same prompt, same segments."""
    from evals.rejection import KEPT_SPLIT, Prompt, summarize, write_stage_data
    from ptft import tasks

    original = tasks.training_set("xsum", "instruct", "fixed", source="mini", limit=3)
    prompts = [Prompt(r.example_id, r.prompt, r.completion) for r in original.examples]
    # the best completion is the gold itself, sampled with the leading space a model emits
    scored = [Scored(p.prompt_id, 0, " " + p.gold, 1.0) for p in prompts]
    kept = select_best(scored, None)
    out = str(tmp_path / "stage")
    write_stage_data(out, prompts, scored, kept, summarize(prompts, scored, kept, RejectionConfig(dataset="xsum")))
    declaration = kept_declaration(out, "rs_test0001", "instruct")
    assert declaration.splits.train == KEPT_SPLIT
    tasks.register_declared(declaration)
    rendered = tasks.training_set("rs_test0001", "instruct", "fixed", source="mini")
    # the loader shuffles rows (seeded), so compare the examples as a set
    def views(rendered_set):
        return sorted((r.prompt, r.completion, r.segments) for r in rendered_set.examples)

    assert len(rendered.examples) == 3 and views(rendered) == views(original)


def test_a_chat_prompt_is_fed_as_sft_fed_it(tiny_model_dir):
    """Tulu's prompts, with the eos after each earlier reply, tokenize to exactly the tokens SFT trained on
    before the row's last reply; the turns are the row's own."""
    from transformers import AutoTokenizer

    from evals.rejection import prompt_set
    from ptft import tasks
    from trainers.examples import leading_special_ids, tokenize_rendered

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts, stops = prompt_set(RejectionConfig(dataset="tulu"), "mini")
    rendered = {r.example_id: r for r in tasks.training_set("tulu", "default", "fixed", source="mini").examples}
    rows = tasks.training_rows("tulu", "mini")
    assert "<|user|>" in stops and sum(bool(p.eos_at) for p in prompts) > 5  # multi-turn rows are there
    for p in prompts:
        r = rendered[p.prompt_id]
        example, _ = tokenize_rendered(r, tok, 4096)
        reply = [*tok(r.completion, add_special_tokens=False)["input_ids"], tok.eos_token_id]
        before_reply = list(example.input_ids[len(leading_special_ids(tok)):len(example.input_ids) - len(reply)])
        assert tok(p.context(tok.eos_token), add_special_tokens=False)["input_ids"] == before_reply
        messages = rows[p.prompt_id]["messages"]
        assert [{"role": role, "content": content} for role, content in p.messages] == messages[:-1]
        assert p.gold == messages[-1]["content"].strip()


def test_a_kept_chat_reply_renders_as_sft_on_tulu(tmp_path):
    """The kept set of a chat prompt set is a chat task: a kept row renders as the original row with the
    kept reply in its last turn."""
    from evals.rejection import kept_data_task, prompt_set, summarize, write_stage_data
    from ptft import tasks

    config = RejectionConfig(dataset="tulu", prompts=6)
    prompts, _ = prompt_set(config, "mini")
    scored = [Scored(p.prompt_id, 0, " " + p.gold + " ", 1.0) for p in prompts]  # the gold, as sampled
    kept = select_best(scored, None)
    out = str(tmp_path / "stage")
    write_stage_data(out, prompts, scored, kept, summarize(prompts, scored, kept, config))
    declaration = kept_data_task(out, "chat0001", config)
    assert declaration.type == "chat"
    tasks.register_declared(declaration)
    original = tasks.training_set("tulu", "default", "fixed", source="mini", limit=6)
    again = tasks.training_set("rs_chat0001", "default", "fixed", source="mini")
    assert sorted(map(repr, (r.segments for r in again.examples))) == \
        sorted(map(repr, (r.segments for r in original.examples)))


def test_a_multiple_choice_prompt_set_scores_the_choice(tiny_lm, tmp_path):
    """A declared multiple-choice task with a training split: its prompts are sampled, the label reward
    is the gold choice's text, and a kept row renders as SFT on the task feeds it."""
    from evals.rejection import kept_data_task, prompt_set, summarize, write_stage_data
    from ptft import tasks

    rows = [{"q": f"{a} + {b}?", "options": [str(a + b - 1), str(a + b), str(a + b + 1)], "gold": 1}
            for a in range(3) for b in range(3)]
    folder = tmp_path / "sums"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks.register_declared(tasks.TaskDeclaration.model_validate({
        "name": "sums_mc", "type": "multiple_choice", "source": {"folder": str(folder)},
        "splits": {"train": "train"}, "columns": {"question": "q", "choices": "options", "answer": "gold"},
        "templates": {"default": "Q: {question}\nA:"}}))
    config = RejectionConfig(dataset="sums_mc", reward="label", samples=2, max_new_tokens=4)
    prompts, stops = prompt_set(config, "mini")
    assert stops == ("\n",) and len(prompts) == 9
    assert {p.prompt.split("Q: ")[1].split("?")[0]: p.gold for p in prompts}["1 + 2"] == "3"
    summary = sample_and_score("unused", config, str(tmp_path / "sampled"), source="mini", lm=tiny_lm)
    assert summary["samples"] == 18 and 0.0 <= summary["mean_score"] <= 1.0
    # the gold choice, sampled with its leading space, scores 1 and renders as SFT on the task
    scored = [Scored(p.prompt_id, 0, " " + p.gold, reward_function("label")(" " + p.gold, p.gold)) for p in prompts]
    assert all(s.score == 1.0 for s in scored)
    out = str(tmp_path / "stage")
    kept = select_best(scored, 1.0)
    write_stage_data(out, prompts, scored, kept, summarize(prompts, scored, kept, config))
    tasks.register_declared(kept_data_task(out, "mc000001", config))
    original = tasks.training_set("sums_mc", "default", "fixed", source="mini")
    again = tasks.training_set("rs_mc000001", "default", "fixed", source="mini")
    assert sorted(map(repr, (r.segments for r in again.examples))) == \
        sorted(map(repr, (r.segments for r in original.examples)))
