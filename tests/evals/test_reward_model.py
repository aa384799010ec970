"""A reward model by id scores (prompt, reply) as its own head does, whatever the batching; rejection
sampling keeps what it scores best."""

from __future__ import annotations

import json
import os

import pytest
import torch

from evals.rejection import RejectionConfig, sample_and_score
from evals.reward_model import (
    RewardModel,
    RewardModelError,
    ScoredInput,
    check_reward_model,
    load_reward_model,
)
from ptft.core.tiny import build_tiny_reward_model

ITEMS = [ScoredInput("Question: what does a cow say?\nAnswer:", " moo"),
         ScoredInput("Summarize: the cat sat on the mat all day long.", " a cat sat on a mat, for a long while"),
         ScoredInput("<|user|>\nwhere does a fish live?\n<|assistant|>\n", "in the water.",
                     messages=(("user", "where does a fish live?"),)),
         ScoredInput("x", " y")]


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory) -> str:
    return build_tiny_reward_model(str(tmp_path_factory.mktemp("rm") / "rm"), seed=3)


def _alone(scorer, item: ScoredInput) -> float:
    """The head's own score of one unpadded input: what a batch must reproduce."""
    ids = torch.tensor([scorer.encode(item)])
    with torch.inference_mode():
        return float(scorer.model(input_ids=ids).logits[0, 0])


def test_scores_are_the_heads_own_whatever_the_batch(reward_dir):
    scorer = load_reward_model(RewardModel(model=reward_dir), device="cpu", batch_size=3)
    batched = scorer.score(ITEMS)
    assert batched == pytest.approx([_alone(scorer, item) for item in ITEMS], abs=1e-5)
    scorer.batch_size = 1
    assert scorer.score(ITEMS) == pytest.approx(batched, abs=1e-5)
    assert scorer.score(ITEMS[::-1])[::-1] == pytest.approx(batched, abs=1e-5)
    assert len(set(batched)) == len(batched)  # a random head tells the inputs apart


def test_how_prompt_and_reply_become_its_input(reward_dir):
    item = ITEMS[2]
    pair = load_reward_model(RewardModel(model=reward_dir, input="pair"), device="cpu")
    text = load_reward_model(RewardModel(model=reward_dir, input="text"), device="cpu")
    tok = pair.tokenizer
    assert pair.input == "pair" and load_reward_model(RewardModel(model=reward_dir), device="cpu").input == "pair"
    assert pair.encode(item) == tok(item.prompt, item.reply)["input_ids"]
    assert text.encode(item) == tok(item.prompt + item.reply)["input_ids"]
    # a cut keeps the end: the reply is what is scored
    short = load_reward_model(RewardModel(model=reward_dir, input="text", max_length=8), device="cpu")
    assert short.encode(ITEMS[1]) == text.encode(ITEMS[1])[-8:]
    # a reward model with a chat template is fed the turns and the reply through it
    tok.chat_template = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}")
    tok.save_pretrained(reward_dir + "-chat")
    pair.model.save_pretrained(reward_dir + "-chat")
    chat = load_reward_model(RewardModel(model=reward_dir + "-chat"), device="cpu")
    assert chat.input == "chat_template"
    expected = tok("[user] where does a fish live?\n[assistant] in the water.\n", add_special_tokens=False)
    assert chat.encode(item) == expected["input_ids"]
    # a prompt set that is not chat: its text is the user's turn
    assert chat.encode(ITEMS[0]) == tok(f"[user] {ITEMS[0].prompt}\n[assistant] moo\n",
                                        add_special_tokens=False)["input_ids"]


def test_what_is_not_a_reward_model_is_refused(reward_dir, tiny_model_dir, tmp_path):
    with pytest.raises(RewardModelError, match="is a OlmoForCausalLM, not a sequence classifier"):
        check_reward_model(RewardModel(model=tiny_model_dir))
    config = json.load(open(os.path.join(reward_dir, "config.json")))
    two = tmp_path / "two-labels"
    two.mkdir()
    (two / "config.json").write_text(json.dumps({**config, "id2label": {"0": "a", "1": "b"},
                                                 "label2id": {"a": 0, "b": 1}}))
    with pytest.raises(RewardModelError, match="has 2 outputs; a reward model scores with one"):
        check_reward_model(RewardModel(model=str(two)))
    with pytest.raises(RewardModelError, match="its tokenizer has no chat template"):
        check_reward_model(RewardModel(model=reward_dir, input="chat_template"))
    with pytest.raises(RewardModelError, match="config does not load"):
        check_reward_model(RewardModel(model=str(tmp_path / "nothing-here")))


def test_rejection_sampling_keeps_the_reward_models_best(tiny_lm, reward_dir, tmp_path):
    reward = RewardModel(model=reward_dir)
    config = RejectionConfig(dataset="tulu", samples=3, temperature=1.0, seed=5, reward=reward, prompts=5,
                             max_new_tokens=6, reward_batch_size=4)
    out = str(tmp_path / "stage")
    summary = sample_and_score("unused", config, out, source="mini", lm=tiny_lm, batch_size=4)
    samples = [json.loads(line) for line in open(os.path.join(out, "samples.jsonl"))]
    kept = {row["prompt_id"]: row for row in map(json.loads, open(os.path.join(out, "kept.jsonl")))}
    assert summary["samples"] == 15 and summary["config"]["reward"]["model"] == reward_dir
    # every score is the reward model's own, and each prompt kept its best non-empty reply
    scorer = load_reward_model(reward, device="cpu")
    from evals.rejection import prompt_set

    prompts = {p.prompt_id: p for p in prompt_set(config, "mini")[0]}
    for s in samples:
        p = prompts[s["prompt_id"]]
        assert s["score"] == pytest.approx(_alone(scorer, ScoredInput(p.prompt, s["text"], p.messages)), abs=1e-5)
    for pid, row in kept.items():
        best = max((s for s in samples if s["prompt_id"] == pid and s["text"].strip()), key=lambda s: s["score"])
        assert row["messages"][-1] == {"role": "assistant", "content": best["text"].strip()}
