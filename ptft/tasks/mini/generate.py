"""Generate the mini datasets: `python -m ptft.tasks.mini.generate [OUT_DIR]` (default: tasks/mini/data).

Every file is synthetic and deterministic (seeded per task and split), written with the real
datasets' column names, split names and label conventions (QQP/STS-B test labels hidden as -1,
SocialIQa labels as strings, HellaSwag labels as strings, BoolQ answers as booleans, ...). The
vocabulary is small and the texts short, so a tiny model can learn them and k-shot prompts stay short.

One simple rule decides each family's target, shared inside the family so transfer can show up:
- nli: hypothesis contains "not" -> contradiction, "maybe" -> neutral, else entailment
  (RTE: "maybe" -> not_entailment, verbalised "neutral").
- paraphrase: second sentence contains "instead" -> not a paraphrase; else it is one.
- summarization: the summary is a shortened copy of the document's first sentence.
- qgen: the question asks about the answer with the context's own words.
- mc / llmbar / tulu: a small world of facts (colours, animal sounds and homes, materials).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"

NAMES = ["tom", "ann", "sam", "mia", "ben", "kim", "joe", "eva", "max", "lily"]
PLACES = ["park", "shop", "school", "beach", "farm", "lake", "zoo", "market"]
TOWNS = ["york", "leeds", "bath", "hull", "derby", "wells"]
ANIMALS = ["cat", "dog", "bird", "fish", "cow", "fox", "duck", "horse"]
OBJECTS = ["ball", "book", "cake", "hat", "box", "cup", "kite", "bag"]
ADJS = ["big", "small", "red", "old", "new", "green"]
VERBS = [("saw", "see"), ("found", "find"), ("took", "take"), ("liked", "like")]
VERBS_MM = [("bought", "buy"), ("made", "make"), ("sold", "sell"), ("read", "read")]
PURPOSES = ["buy milk", "meet a friend", "play ball", "read a book", "see the animals", "eat lunch"]
COLORS = {"snow": "white", "grass": "green", "the sky": "blue", "the sun": "yellow", "coal": "black",
          "a tomato": "red", "milk": "white", "a leaf": "green", "the sea": "blue", "a banana": "yellow",
          "a crow": "black", "a cherry": "red"}
SOUNDS = {"dog": "bark", "cat": "meow", "cow": "moo", "duck": "quack", "sheep": "baa", "lion": "roar",
          "owl": "hoot", "horse": "neigh"}
HOMES = {"fish": "water", "bird": "nest", "bee": "hive", "rabbit": "hole", "horse": "barn", "pig": "sty",
         "spider": "web", "bear": "cave"}
MATERIALS = {"a window": "glass", "a chair": "wood", "a coin": "metal", "a shirt": "cloth",
             "a bottle": "plastic", "a wall": "brick", "a book": "paper", "a ring": "gold"}
ACTIVITIES = {
    "Cooking": ("is cooking in the kitchen.", "puts the food on a plate."),
    "Swimming": ("is swimming in the pool.", "swims to the end of the pool."),
    "Painting": ("is painting a wall.", "dips the brush in the paint."),
    "Running": ("is running in the park.", "runs past a tree."),
    "Reading": ("is reading on a bench.", "turns the page of the book."),
    "Gardening": ("is working in the garden.", "plants a flower in the soil."),
}
FILLERS = ["many people came to see it.", "the weather was nice.", "it was a long day.",
           "everyone was happy.", "the news spread fast.", "a band played music."]

Row = dict[str, object]


def _other(rng: random.Random, pool: list[str], not_this: str) -> str:
    return rng.choice([p for p in pool if p != not_this])


def _options(rng: random.Random, correct: str, pool: list[str], n: int = 4) -> tuple[list[str], int]:
    options = [correct, *rng.sample(sorted(set(pool) - {correct}), n - 1)]
    rng.shuffle(options)
    return options, options.index(correct)


# --- NLI ----------------------------------------------------------------------------------------

def _nli_pair(rng: random.Random, label: int, mismatched: bool = False) -> tuple[str, str]:
    name = rng.choice(NAMES)
    past, base = rng.choice(VERBS_MM if mismatched else VERBS)
    noun = rng.choice(OBJECTS if mismatched else ANIMALS)
    premise = f"{name} {past} a {rng.choice(ADJS)} {noun} at the {rng.choice(PLACES)}."
    hypothesis = [f"{name} {past} a {noun}.", f"maybe {name} {past} a {noun} again.",
                  f"{name} did not {base} a {noun}."][label]
    return premise, hypothesis


def mnli(rng: random.Random, i: int, split: str) -> Row:
    label = rng.randrange(3)
    premise, hypothesis = _nli_pair(rng, label, mismatched="mismatched" in split)
    return {"premise": premise, "hypothesis": hypothesis, "label": label, "idx": i}


def mnli_mismatched(rng: random.Random, i: int, split: str) -> Row:
    return mnli(rng, i, "mismatched")


def rte(rng: random.Random, i: int, split: str) -> Row:
    label = rng.randrange(2)  # 0 entailment, 1 not_entailment
    name, place = rng.choice(NAMES), rng.choice(PLACES)
    sentence1 = f"{name} went to the {place} with a {rng.choice(OBJECTS)}. it was a nice day."
    sentence2 = f"maybe {name} went to the {place} twice." if label else f"{name} went to the {place}."
    return {"sentence1": sentence1, "sentence2": sentence2, "label": label, "idx": i}


def gpt3nli(rng: random.Random, i: int, split: str) -> Row:
    label = rng.randrange(3)
    noun, adj = rng.choice(OBJECTS), rng.choice(ADJS)
    text_b = [f"the {noun} is {adj}.", f"maybe the {noun} is {adj} and {_other(rng, ADJS, adj)}.",
              f"the {noun} is not {adj}."][label]
    return {"text_a": f"the {noun} on the table is {adj}.", "text_b": text_b, "label": label, "guid": i}


# --- paraphrase ---------------------------------------------------------------------------------

def paws(rng: random.Random, i: int, split: str) -> Row:
    label = rng.randrange(2)
    name, (past, _), adj = rng.choice(NAMES), rng.choice(VERBS), rng.choice(ADJS)
    noun, place = rng.choice(ANIMALS), rng.choice(PLACES)
    sentence1 = f"{name} {past} the {adj} {noun} at the {place}."
    if label:
        sentence2 = f"at the {place} , {name} {past} the {adj} {noun}."
    else:
        sentence2 = f"{name} {past} the {adj} {_other(rng, ANIMALS, noun)} at the {place} instead."
    return {"id": i + 1, "sentence1": sentence1, "sentence2": sentence2, "label": label}


def _question_pair(rng: random.Random, label: int) -> tuple[str, str]:
    adj, noun = rng.choice(ADJS), rng.choice(OBJECTS)
    first, second = rng.choice([("where can i find a {a} {n}?", "where do i find a {a} {n}?"),
                                ("how do i make a {a} {n}?", "what is the way to make a {a} {n}?")])
    text1 = first.format(a=adj, n=noun)
    if label:
        return text1, second.format(a=adj, n=noun)
    return text1, first.format(a=adj, n=_other(rng, OBJECTS, noun))[:-1] + " instead?"


def qqp(rng: random.Random, i: int, split: str) -> Row:
    label = rng.randrange(2)
    text1, text2 = _question_pair(rng, label)
    if split == "test":  # GLUE hides test labels
        return {"text1": text1, "text2": text2, "label": -1, "idx": i, "label_text": ""}
    return {"text1": text1, "text2": text2, "label": label, "idx": i,
            "label_text": "duplicate" if label else "not duplicate"}


def stsb(rng: random.Random, i: int, split: str) -> Row:
    similar = rng.randrange(2)
    animal, place = rng.choice(ANIMALS), rng.choice(PLACES)
    text1 = f"a {animal} is running in the {place}."
    text2 = (f"a {animal} runs in the {place}." if similar
             else f"a {_other(rng, ANIMALS, animal)} is sleeping in the {place} instead.")
    score = round(rng.uniform(3.6, 5.0), 1) if similar else round(rng.uniform(0.0, 3.4), 1)
    if split == "test":
        score = -1.0
    return {"text1": text1, "text2": text2, "label": score, "idx": i, "label_text": str(score)}


# --- summarization ------------------------------------------------------------------------------

def _story(rng: random.Random) -> tuple[list[str], str]:
    name, town = rng.choice(NAMES), rng.choice(TOWNS)
    place, adj, animal = rng.choice(PLACES), rng.choice(ADJS), rng.choice(ANIMALS)
    lead, summary = rng.choice([
        (f"{name} opened a new {place} in {town}.", f"{name} opened a {place}."),
        (f"the {adj} {animal} from {town} won a prize.", f"a {animal} won a prize."),
        (f"{name} and {_other(rng, NAMES, name)} built a {adj} {place} in {town}.", f"{name} built a {place}."),
    ])
    return [lead, *rng.sample(FILLERS, rng.randint(2, 3))], summary


def xsum(rng: random.Random, i: int, split: str) -> Row:
    sentences, summary = _story(rng)
    return {"document": " ".join(sentences), "summary": summary, "id": str(30000000 + i)}


def xlsum(rng: random.Random, i: int, split: str) -> Row:
    sentences, summary = _story(rng)
    return {"id": f"news-{i}", "url": f"https://example.org/news-{i}", "title": summary.rstrip("."),
            "summary": summary, "text": " ".join(sentences)}


def cnn(rng: random.Random, i: int, split: str) -> Row:
    sentences, summary = _story(rng)
    return {"article": " ".join(sentences), "highlights": f"{summary}\n{sentences[1]}", "id": f"{i:040x}"}


# --- question generation ------------------------------------------------------------------------

def socialiqa(rng: random.Random, i: int, split: str) -> Row:
    name, place, purpose = rng.choice(NAMES), rng.choice(PLACES), rng.choice(PURPOSES)
    if rng.random() < 0.5:
        context, question, correct = (f"{name} went to the {place} to {purpose}.",
                                      f"why did {name} go to the {place}?", f"to {purpose}")
        pool = [f"to {p}" for p in PURPOSES]
    else:
        thing, friend = rng.choice(OBJECTS), _other(rng, NAMES, name)
        context, question, correct = (f"{name} gave {friend} a {thing} at the {place}.",
                                      f"what did {name} give {friend}?", f"a {thing}")
        pool = [f"a {o}" for o in OBJECTS]
    options, gold = _options(rng, correct, pool, 3)
    return {"context": context, "question": question, "answerA": options[0], "answerB": options[1],
            "answerC": options[2], "label": str(gold + 1)}


def tweetqa(rng: random.Random, i: int, split: str) -> Row:
    name, place, town = rng.choice(NAMES), rng.choice(PLACES), rng.choice(TOWNS)
    if rng.random() < 0.5:
        tweet, answer, question = (f"so happy to see {name} at the {place} today! #{town}", place,
                                   f"where was {name} today?")
    else:
        animal = rng.choice(ANIMALS)
        tweet, answer, question = (f"{name} just got a new {animal} in {town}. so cute!", animal,
                                   f"what did {name} get?")
    return {"Question": question, "Answer": [answer], "Tweet": tweet, "qid": f"{i:032x}"}


def sciq(rng: random.Random, i: int, split: str) -> Row:
    if rng.random() < 0.5:
        thing = rng.choice(sorted(MATERIALS))
        correct, pool = MATERIALS[thing], sorted(set(MATERIALS.values()))
        support, question = f"{thing} is made of {correct}. it is very useful.", f"what is {thing} made of?"
    else:
        animal = rng.choice(sorted(HOMES))
        correct, pool = HOMES[animal], sorted(set(HOMES.values()))
        support, question = f"a {animal} lives in a {correct}. it is safe there.", f"where does a {animal} live?"
    distractors = rng.sample([p for p in pool if p != correct], 3)
    return {"question": question, "distractor3": distractors[2], "distractor1": distractors[0],
            "distractor2": distractors[1], "correct_answer": correct, "support": support}


# --- multiple choice ----------------------------------------------------------------------------

def _lettered(rng: random.Random, question_key: str, question: str, correct: str, pool: list[str],
              i: int) -> Row:
    options, gold = _options(rng, correct, pool)
    letters = ["A", "B", "C", "D"]
    return {"id": f"mini-{i}", question_key: question, "choices": {"text": options, "label": letters},
            "answerKey": letters[gold]}


def arc_easy(rng: random.Random, i: int, split: str) -> Row:
    thing = rng.choice(sorted(COLORS))
    return _lettered(rng, "question", f"what color is {thing}?", COLORS[thing],
                     sorted(set(COLORS.values())), i)


def arc_challenge(rng: random.Random, i: int, split: str) -> Row:
    animal = rng.choice(sorted(SOUNDS))
    return _lettered(rng, "question", f"which sound does a {animal} make?", SOUNDS[animal],
                     sorted(SOUNDS.values()), i)


def openbookqa(rng: random.Random, i: int, split: str) -> Row:
    animal = rng.choice(sorted(HOMES))
    return _lettered(rng, "question_stem", f"a {animal} lives in a", HOMES[animal], sorted(HOMES.values()), i)


def hellaswag(rng: random.Random, i: int, split: str) -> Row:
    activity = rng.choice(sorted(ACTIVITIES))
    start, ending = ACTIVITIES[activity]
    person, pronoun = rng.choice([("a man", "he"), ("a woman", "she"), ("a child", "the child")])
    ctx_a = f"{person} {start}"
    others = [ACTIVITIES[a][1] for a in sorted(ACTIVITIES) if a != activity]
    endings, gold = _options(rng, ending, others)
    return {"ind": i, "activity_label": activity, "ctx_a": ctx_a, "ctx_b": pronoun,
            "ctx": f"{ctx_a} {pronoun}", "endings": endings, "source_id": f"mini~{i}",
            "split": "val" if split == "validation" else split, "split_type": "indomain",
            "label": str(gold)}


def boolq(rng: random.Random, i: int, split: str) -> Row:
    thing = rng.choice(sorted(COLORS))
    color = COLORS[thing] if rng.random() < 0.5 else _other(rng, sorted(set(COLORS.values())), COLORS[thing])
    return {"question": f"is {thing} {color}", "answer": color == COLORS[thing],
            "passage": f"{thing} is {COLORS[thing]}. people often talk about it."}


# --- LLMBar and Tulu ----------------------------------------------------------------------------

def _llmbar(rng: random.Random, i: int, split: str) -> Row:
    thing = rng.choice(sorted(COLORS))
    right = f"{thing} is {COLORS[thing]}."
    wrong = f"{thing} is {_other(rng, sorted(set(COLORS.values())), COLORS[thing])}."
    if rng.random() < 0.5:
        word = rng.choice(ANIMALS)
        prompt, right, wrong = f"write the word {word} two times.", f"{word} {word}", f"{word}"
    else:
        prompt = f"what color is {thing}?"
    label = rng.choice([1, 2])
    outputs = (right, wrong) if label == 1 else (wrong, right)
    return {"input": prompt, "output_1": outputs[0], "output_2": outputs[1], "label": label}


def tulu(rng: random.Random, i: int, split: str) -> Row:
    thing, animal = rng.choice(sorted(COLORS)), rng.choice(sorted(SOUNDS))
    turns = [
        (f"what color is {thing}?", f"{thing} is {COLORS[thing]}."),
        (f"what sound does a {animal} make?", f"a {animal} says {SOUNDS[animal]}."),
        (f"where does a {rng.choice(sorted(HOMES))} live?", None),
        (f"write the word {rng.choice(OBJECTS)}.", None),
    ]
    messages: list[dict[str, str]] = []
    if rng.random() < 0.2:
        messages.append({"role": "system", "content": "you are a helpful bot."})
    for user, answer in rng.sample(turns, rng.choice([1, 1, 2])):
        if answer is None and user.startswith("where"):
            animal_home = user.split()[3]
            answer = f"a {animal_home} lives in a {HOMES[animal_home]}."
        elif answer is None:
            answer = user.split()[-1].rstrip(".")
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"dataset": "mini_facts", "id": f"mini_facts_{i}", "messages": messages}


Maker = Callable[[random.Random, int, str], Row]

# task -> (row maker, {split: rows}); the splits are the ones the registry reads.
PLAN: dict[str, tuple[Maker, dict[str, int]]] = {
    "xsum": (xsum, {"train": 400, "test": 100}),
    "xlsum": (xlsum, {"train": 60, "test": 100}),
    "cnn": (cnn, {"train": 60, "test": 100}),
    "socialiqa": (socialiqa, {"train": 400, "validation": 100}),
    "tweetqa": (tweetqa, {"train": 100, "validation": 100}),
    "sciq": (sciq, {"train": 60, "test": 100}),
    "mnli": (mnli, {"train": 400}),
    "mnli_matched": (mnli, {"validation": 100}),
    "mnli_mismatched": (mnli_mismatched, {"validation": 100}),
    "rte": (rte, {"train": 100, "validation": 100}),
    "gpt3nli": (gpt3nli, {"train": 100}),
    "paws": (paws, {"train": 400, "test": 100}),
    "qqp": (qqp, {"train": 60, "validation": 100, "test": 100}),
    "stsb": (stsb, {"train": 60, "validation": 100, "test": 100}),
    "arc_easy": (arc_easy, {"train": 40, "validation": 100}),
    "arc_challenge": (arc_challenge, {"train": 40, "validation": 100}),
    "openbookqa": (openbookqa, {"train": 40, "validation": 100}),
    "hellaswag": (hellaswag, {"train": 40, "validation": 100}),
    "boolq": (boolq, {"train": 40, "validation": 100}),
    "sciq_mc": (sciq, {"train": 40, "validation": 100}),
    "llmbar_natural": (_llmbar, {"train": 60}),
    "llmbar_adversarial_neighbor": (_llmbar, {"train": 60}),
    "llmbar_adversarial_manual": (_llmbar, {"train": 40}),
    "tulu": (tulu, {"train": 1200}),
}


def write_splits(plan: dict[str, tuple[Callable[..., dict], dict[str, int]]], out_dir: Path, seed_prefix: str,
                 row: Callable[[Callable[..., dict], random.Random, int, str], dict]) -> list[Path]:
    """Write `out_dir/<name>/<split>.jsonl` for every (name, split) of `plan` ({name: (maker, {split: rows})}),
    row i made by `row(maker, rng, i, split)` with a generator seeded by name and split; returns the files."""
    written = []
    for name, (maker, splits) in plan.items():
        for split, n_rows in splits.items():
            rng = random.Random(f"{seed_prefix}/{name}/{split}")  # str seeds are stable across runs
            path = out_dir / name / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = [json.dumps(row(maker, rng, i, split), ensure_ascii=False) for i in range(n_rows)]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            written.append(path)
    return written


def generate(out_dir: Path = DATA_DIR) -> list[Path]:
    """Write every mini split under `out_dir/<task>/<split>.jsonl`; returns the files written."""
    return write_splits(PLAN, out_dir, "ptft-mini", lambda maker, rng, i, split: maker(rng, i, split))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    files = generate(Path(args[0]) if args else DATA_DIR)
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
