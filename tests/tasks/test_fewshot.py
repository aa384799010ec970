"""k-shot assembly: any k, both modes, and the token budget (drop the oldest shots, never cut the item)."""

from __future__ import annotations

import pytest

from ptft.tasks import eval_set
from ptft.tasks.fewshot import assemble


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize("mode", ["faithful", "fixed"])
@pytest.mark.parametrize("shots", [0, 2, 4, 7])
def test_any_k(mode: str, shots: int) -> None:
    evals = eval_set("paws", "default", mode, shots=shots, source="mini", limit=10)
    assert evals.shots == shots and evals.counts["shots_requested"] == shots
    assert all(e.shots_used == shots and e.shots_dropped == 0 for e in evals.examples)
    zero = eval_set("paws", "default", mode, shots=0, source="mini", limit=10)
    for with_shots, bare in zip(evals.examples, zero.examples, strict=True):
        assert with_shots.context.endswith(bare.context)  # the item itself is untouched
    assert (evals.checksum == zero.checksum) == (shots == 0)


def test_fixed_shots_are_nested_across_k() -> None:
    two = eval_set("xsum", "default", "fixed", shots=2, source="mini", limit=1).examples[0]
    four = eval_set("xsum", "default", "fixed", shots=4, source="mini", limit=1).examples[0]
    query = eval_set("xsum", "default", "fixed", shots=0, source="mini", limit=1).examples[0].context
    assert four.context.startswith(two.context[: -len(query)])
    other_seed = eval_set("xsum", "default", "fixed", shots=2, source="mini", limit=1, seed=7).examples[0]
    assert other_seed.context != two.context


def test_budget_drops_oldest_shots_and_records_it() -> None:
    full = eval_set("mnli_matched", "default", "fixed", shots=4, source="mini", limit=20)
    zero = eval_set("mnli_matched", "default", "fixed", shots=0, source="mini", limit=20)
    shots = full.examples[0].context[: -len(zero.examples[0].context)].split("\n\n")[:-1]
    assert len(shots) == 4
    # room for exactly the last two shots (+ the longest candidate, which the budget reserves)
    budget = max(words("\n\n".join(shots[2:]) + "\n\n" + z.context + " contradiction") for z in zero.examples)
    cut = eval_set("mnli_matched", "default", "fixed", shots=4, source="mini", limit=20,
                   count_tokens=words, max_tokens=budget)
    for example, bare in zip(cut.examples, zero.examples, strict=True):
        assert example.shots_used + example.shots_dropped == 4
        assert words(example.context + " contradiction") <= budget
        assert example.context.endswith(bare.context)
        kept = example.context[: -len(bare.context)]
        assert kept == "".join(s + "\n\n" for s in shots[example.shots_dropped:])  # the newest survive
    assert cut.counts["shots_dropped"] == sum(e.shots_dropped for e in cut.examples) > 0
    assert cut.counts["examples_with_dropped_shots"] > 0 and cut.counts["over_budget"] == 0
    assert cut.checksum != full.checksum


def test_item_over_budget_even_at_zero_shots_is_kept_whole() -> None:
    zero = eval_set("xsum", "default", "faithful", shots=0, source="mini", limit=5)
    over = eval_set("xsum", "default", "faithful", shots=4, source="mini", limit=5,
                    count_tokens=words, max_tokens=3)
    assert over.counts["over_budget"] == 5
    for example, bare in zip(over.examples, zero.examples, strict=True):
        assert example.context == bare.context and example.shots_used == 0 and example.shots_dropped == 4


def test_budget_needs_both_arguments() -> None:
    with pytest.raises(ValueError, match="go together"):
        eval_set("paws", "default", "fixed", shots=2, source="mini", count_tokens=words)
    assert assemble(["a ", "b "], "q").context == "a b q"
    assert assemble(["a ", "b "], "q", words, 2).shots_dropped == 1


def test_faithful_shots_are_the_first_items_and_are_scored() -> None:
    evals = eval_set("paws", "io", "faithful", shots=2, source="mini")
    first, second = evals.examples[0], evals.examples[1]
    prefix = first.context[: first.context.index("\n", first.context.index("\n") + 1) + 1]
    # prefix = prompt + completion + "\n" of items 0 and 1, no join space (docs/study.md §5.1)
    zero = eval_set("paws", "io", "faithful", shots=0, source="mini", limit=2).examples
    assert prefix == zero[0].context + first.target + "\n" + zero[1].context + second.target + "\n"
    assert all(e.context.startswith(prefix) for e in evals.examples)
    assert evals.counts["scored"] == evals.counts["rows"]  # the shot items are scored as well


def test_fixed_shots_come_from_the_training_split_and_are_never_scored() -> None:
    matched = eval_set("mnli_matched", "default", "fixed", shots=3, source="mini")
    assert matched.counts["shot_rows_excluded"] == 0 and matched.counts["scored"] == 100
    from ptft.tasks import load_rows

    train_premises = {r["premise"] for r in load_rows("mnli", "train", source="mini")}
    shot_block = matched.examples[0].context.split("\n\n")[:3]
    for shot in shot_block:
        assert shot.split("\n")[0].removeprefix("### Input_1: ") in train_premises
    # gpt3nli has only one split: its shot rows are removed from the scored set
    gpt3 = eval_set("gpt3nli", "default", "fixed", shots=3, source="mini")
    assert gpt3.counts["shot_rows_excluded"] == 3 and gpt3.counts["scored"] == 97


def test_llmbar_faithful_context_is_the_study_chat_wrapper() -> None:
    evals = eval_set("llmbar_natural", "default", "faithful", shots=1, source="mini", limit=3)
    for example in evals.examples:
        # the study passed the whole messages list (gold answer included) to the OLMo chat wrapper
        assert example.context.endswith(
            f"\n<|assistant|>\n{example.target}|||IP_ADDRESS|||\n<|assistant|>\n")
        assert "|||IP_ADDRESS|||<|user|>\n### Instruction: " in example.context
    assert evals.faithful_verbalizers == ("1", "2", " 1", " 2")
    # the file is shuffled with seed 42 first, so the shot is not row 0 of the file
    assert evals.examples[0].example_id != "llmbar_natural/train/0"
    fixed = eval_set("llmbar_natural", "default", "fixed", shots=1, source="mini", limit=3)
    assert all(e.context.endswith("Instruction Following: \n<|assistant|>\n") for e in fixed.examples)
    assert "IP_ADDRESS" not in fixed.examples[0].context
