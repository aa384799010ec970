"""The demo's pre-training corpus: deterministic, generated from our own templates.

It shares the mini datasets' small world (names, places, animals, ...) and their label rules, so what is
learned here carries over to them, but it is never built from the mini rows themselves. It mixes:

- plain text: short stories about that world (the bulk);
- NLI-like text: a statement, a second statement and the relation between them, written in several
  surface forms (the mini rule's "not" -> contradiction, else entailment; never the "maybe" -> neutral
  case, which only fine-tuning teaches);
- summary-like text: a short news story followed by a one-line summary, a shortened copy of its first
  sentence, again in several surface forms.

Paraphrase patterns (a sentence pair with a yes/no verdict, "instead" meaning no) never appear, so the
base models cannot do PAWS/QQP/STS-B and only fine-tuning teaches it, as in the study where some tasks
are "learned in pre-training" and others only in fine-tuning.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ptft.tasks.mini.generate import ADJS, ANIMALS, FILLERS, NAMES, OBJECTS, PLACES, TOWNS

# Verbs the NLI text uses, (past, base form): a superset of the mini sets' so the rule, not the verb,
# is what the model learns.
VERBS = [("saw", "see"), ("found", "find"), ("took", "take"), ("liked", "like"), ("bought", "buy"),
         ("made", "make"), ("sold", "sell"), ("read", "read"), ("fed", "feed"), ("lost", "lose")]
NOUNS = ANIMALS + OBJECTS
WEATHER = ["it was sunny.", "it was cold.", "it rained all day.", "the wind was strong.", "it was warm."]
FEELINGS = ["happy", "tired", "glad", "sad", "calm"]

# Surface forms of one NLI example: (premise, hypothesis, label word) -> text.
_NLI_FORMS: list[Callable[[str, str, str], str]] = [
    lambda p, h, y: f"Input 1: {p}\nInput 2: {h}\nInference: {y}",
    lambda p, h, y: f"Consider the following texts: Text 1: {p} Text 2: {h} The relation is {y}",
    lambda p, h, y: f"{p} {h} the relation between these two is {y}.",
    lambda p, h, y: f"premise: {p} hypothesis: {h} label: {y}",
    lambda p, h, y: f"if {p[:-1]}, then is it true that {h[:-1]}? that is {y}.",
]

# Surface forms of one summary example: (document, summary) -> text.
_SUMMARY_FORMS: list[Callable[[str, str], str]] = [
    lambda d, s: f"Input: {d}\nSummary: {s}",
    lambda d, s: f"Please read the following text: {d} Provide a summary: {s}",
    lambda d, s: f"{d} in short: {s}",
    lambda d, s: f"news: {d} summary: {s}",
    lambda d, s: f"{d}\nTL;DR: {s}",
]


def plain_text(rng: random.Random) -> str:
    """A short story: plain sentences about the shared world, with no task pattern in it."""
    name, friend = rng.choice(NAMES), rng.choice(NAMES)
    place, town = rng.choice(PLACES), rng.choice(TOWNS)
    past, _ = rng.choice(VERBS)
    noun, adj = rng.choice(NOUNS), rng.choice(ADJS)
    sentences = [
        f"{name} went to the {place} in {town}.",
        f"{name} {past} a {adj} {noun} there.",
        f"{friend} was at the {place} too.",
        f"at the {place} , {name} met {friend}.",
        f"the {noun} was {rng.choice(ADJS)}.",
        f"{name} felt {rng.choice(FEELINGS)}.",
        rng.choice(WEATHER),
        rng.choice(FILLERS),
        f"they did not stay long at the {place}.",
        f"maybe {friend} will come back to {town}.",
    ]
    first, rest = sentences[0], sentences[1:]
    return " ".join([first, *rng.sample(rest, rng.randint(3, 6))])


def nli_example(rng: random.Random) -> tuple[str, str, str]:
    """(premise, hypothesis, label word) following the mini NLI rule, with our own sentence shapes.

    Only two of the three relations appear: "not" -> contradiction, else entailment. Hedged hypotheses
    ("maybe ...") -> neutral is left for fine-tuning to teach, so a base model tops out near 2/3 on
    MNLI and does not solve RTE (whose second class is exactly the hedged case) before it is fine-tuned.
    """
    name, (past, base) = rng.choice(NAMES), rng.choice(VERBS)
    noun, adj, place = rng.choice(NOUNS), rng.choice(ADJS), rng.choice(PLACES)
    if rng.random() < 0.5:
        premise = f"{name} {past} a {adj} {noun} at the {place}."
        pos, neg = f"{name} {past} a {noun}.", f"{name} did not {base} a {noun}."
    else:
        premise = f"the {noun} at the {place} is {adj}."
        pos, neg = f"the {noun} is {adj}.", f"the {noun} is not {adj}."
    if rng.random() < 0.5:
        return premise, pos, "entailment"
    return premise, neg, "contradiction"


def summary_example(rng: random.Random) -> tuple[str, str]:
    """(document, summary): the summary is the first sentence shortened (no adjective, no town)."""
    name, friend, town = rng.choice(NAMES), rng.choice(NAMES), rng.choice(TOWNS)
    place, adj, noun = rng.choice(PLACES), rng.choice(ADJS), rng.choice(NOUNS)
    lead, summary = rng.choice([
        (f"{name} opened a new {place} in {town}.", f"{name} opened a {place}."),
        (f"the {adj} {noun} from {town} won a prize.", f"a {noun} won a prize."),
        (f"{name} and {friend} built a {adj} {place} in {town}.", f"{name} built a {place}."),
        (f"{name} found a {adj} {noun} near the {place} in {town}.", f"{name} found a {noun}."),
        (f"a {adj} {noun} was lost at the {place} in {town}.", f"a {noun} was lost."),
        (f"{name} sold the {adj} {noun} to {friend} in {town}.", f"{name} sold the {noun}."),
    ])
    body = rng.sample(FILLERS + WEATHER, rng.randint(2, 3))
    return " ".join([lead, *body]), summary


def corpus_documents(n_docs: int, seed: int = 0, nli_share: float = 0.25,
                     summary_share: float = 0.25) -> list[str]:
    """`n_docs` documents, the same for the same arguments: plain text, NLI-like and summary-like text.

    An NLI or summary document holds 2-3 examples in one surface form, like a page of worked examples, so
    the model sees the pattern repeat within its context (what k-shot prompts later rely on).
    """
    rng = random.Random(f"ptft-demo-corpus/{seed}")  # str seeds are stable across runs and platforms
    docs = []
    for _ in range(n_docs):
        draw = rng.random()
        if draw < nli_share:
            form = rng.choice(_NLI_FORMS)
            docs.append("\n\n".join(form(*nli_example(rng)) for _ in range(rng.randint(2, 3))))
        elif draw < nli_share + summary_share:
            form = rng.choice(_SUMMARY_FORMS)
            docs.append("\n\n".join(form(*summary_example(rng)) for _ in range(rng.randint(2, 3))))
        else:
            docs.append(plain_text(rng))
    return docs
