"""Generate the mini preference sets: `python -m ptft.tasks.mini.generate_preferences [OUT_DIR]`.

Written under `ptft/tasks/mini/preferences/<set>/<split>.jsonl` (default), deterministic, in the small
world of the mini tasks (`ptft/tasks/mini/generate.py`), with the real datasets' schemas (docs/dpo.md §1):

- ultrafeedback (`HuggingFaceH4/ultrafeedback_binarized`): prompt, prompt_id, chosen/rejected/messages as
  message lists, score_chosen, score_rejected; splits train_prefs / test_prefs;
- hh_rlhf (`Anthropic/hh-rlhf`): chosen / rejected dialogue strings with "\\n\\nHuman:" / "\\n\\nAssistant:"
  turns, sharing every turn but the last; splits train / test;
- preference_pairs (a folder source): prompt / chosen / rejected strings;
- demo_prefs: the learnable set of the demo. Chosen is the right answer by the mini rules, rejected a wrong
  one: an NLI label that breaks the rule ("not" -> contradiction, "maybe" -> neutral, else entailment), or a
  summary of another story (unfaithful to the document). Prompts use the demo corpus's surface forms
  (`ptft/cli/demo/corpus.py`: "Input 1/Input 2/Inference", "Input/Summary"), so a demo model pre-trained
  on that corpus already reads them.

Kept apart from `mini/data/` on purpose: that folder is exactly what `generate.py` writes (tests/tasks/test_mini.py).
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

from ptft.tasks.mini.generate import COLORS, HOMES, SOUNDS, _nli_pair, _story, write_splits

PREFERENCE_DIR = Path(__file__).resolve().parent / "preferences"
NLI_WORDS = ("entailment", "neutral", "contradiction")

Row = dict[str, object]


def _fact(rng: random.Random) -> tuple[str, str, str]:
    """(question, right answer, wrong answer) about the mini world."""
    kind = rng.choice(("color", "sound", "home"))
    if kind == "color":
        thing = rng.choice(sorted(COLORS))
        wrong = rng.choice(sorted(set(COLORS.values()) - {COLORS[thing]}))
        return f"what color is {thing}?", f"{thing} is {COLORS[thing]}.", f"{thing} is {wrong}."
    if kind == "sound":
        animal = rng.choice(sorted(SOUNDS))
        wrong = rng.choice(sorted(set(SOUNDS.values()) - {SOUNDS[animal]}))
        return (f"what sound does a {animal} make?", f"a {animal} says {SOUNDS[animal]}.",
                f"a {animal} says {wrong}.")
    animal = rng.choice(sorted(HOMES))
    wrong = rng.choice(sorted(set(HOMES.values()) - {HOMES[animal]}))
    return f"where does a {animal} live?", f"a {animal} lives in a {HOMES[animal]}.", f"a {animal} lives in a {wrong}."


def ultrafeedback(rng: random.Random, i: int) -> Row:
    question, right, wrong = _fact(rng)
    chosen = [{"content": question, "role": "user"}, {"content": right, "role": "assistant"}]
    rejected = [{"content": question, "role": "user"}, {"content": wrong, "role": "assistant"}]
    score_chosen = float(rng.randint(7, 10))
    return {"prompt": question, "prompt_id": hashlib.sha256(question.encode()).hexdigest(), "chosen": chosen,
            "rejected": rejected, "messages": chosen, "score_chosen": score_chosen,
            "score_rejected": float(rng.randint(1, int(score_chosen) - 1))}


def hh_rlhf(rng: random.Random, i: int) -> Row:
    turns = []
    for _ in range(rng.randint(0, 1)):  # an earlier exchange both responses share
        question, right, _ = _fact(rng)
        turns.append(f"\n\nHuman: {question}\n\nAssistant: {right}")
    question, right, wrong = _fact(rng)
    head = "".join(turns) + f"\n\nHuman: {question}\n\nAssistant:"
    return {"chosen": f"{head} {right}", "rejected": f"{head} {wrong}"}


def preference_pairs(rng: random.Random, i: int) -> Row:
    question, right, wrong = _fact(rng)
    return {"prompt": f"Question: {question}\nAnswer:", "chosen": f" {right}", "rejected": f" {wrong}"}


def demo_prefs(rng: random.Random, i: int) -> Row:
    if i % 2 == 0:  # NLI: the rule's label against a label that breaks it
        label = rng.randrange(3)
        premise, hypothesis = _nli_pair(rng, label)
        wrong = rng.choice([w for w in range(3) if w != label])
        return {"prompt": f"Input 1: {premise}\nInput 2: {hypothesis}\nInference:",
                "chosen": f" {NLI_WORDS[label]}", "rejected": f" {NLI_WORDS[wrong]}", "kind": "nli"}
    sentences, summary = _story(rng)
    other = summary
    while other == summary:  # another story's summary: well formed, but not this document's
        other = _story(rng)[1]
    return {"prompt": f"Input: {' '.join(sentences)}\nSummary:", "chosen": f" {summary}",
            "rejected": f" {other}", "kind": "summary"}


PLAN = {
    "ultrafeedback": (ultrafeedback, {"train_prefs": 8, "test_prefs": 4}),
    "hh_rlhf": (hh_rlhf, {"train": 8, "test": 4}),
    "preference_pairs": (preference_pairs, {"train": 8, "test": 4}),
    "demo_prefs": (demo_prefs, {"train": 240, "test": 80}),
}


def generate(out_dir: Path = PREFERENCE_DIR) -> list[Path]:
    """Write every mini preference split under `out_dir/<set>/<split>.jsonl`; returns the files written."""
    return write_splits(PLAN, out_dir, "ptft-mini-preferences", lambda maker, rng, i, split: maker(rng, i))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    files = generate(Path(args[0]) if args else PREFERENCE_DIR)
    print(f"wrote {len(files)} files, {sum(f.stat().st_size for f in files) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
