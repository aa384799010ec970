"""Generate the mini corpora (docs/continual_pt.md §1): `python -m ptft.tasks.mini.generate_corpora [OUT_DIR]`.

`recipes` is the *new domain*: cooking recipes, capitalised, with quantities, temperatures and times, in a
vocabulary the demo's pre-training corpus (`ptft/cli/demo/corpus.py`: lower-case stories about names,
towns, animals, and NLI/summary pages) never uses (`tests/tasks/test_corpora.py` checks the overlap).
Deterministic (string seeds), written as `<name>/train.jsonl` and `<name>/validation.jsonl`.

`demo_pretrain` is the *old domain*: documents from the demo's own generator with another seed, so they
are like what the demo pre-trained on but not the same documents. Its code is above this floor (it lives in
`ptft/cli/`), so this module only writes what it is given:

    python -c "from ptft.cli.demo.corpus import corpus_documents as d; \\
               from ptft.tasks.mini.generate_corpora import write_corpus; \\
               write_corpus('demo_pretrain', d(OLD_DOMAIN_DOCS, seed=OLD_DOMAIN_SEED), VALIDATION_DOCS)"

and the test pins the shipped files to that output.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

CORPORA_DIR = Path(__file__).resolve().parent / "corpora"

TRAIN_DOCS, VALIDATION_DOCS = 300, 60
OLD_DOMAIN_DOCS, OLD_DOMAIN_SEED = TRAIN_DOCS + VALIDATION_DOCS, 1  # the demo pre-trains on seed 0

DISHES = ["Lentil Soup", "Onion Tart", "Garlic Bread", "Pumpkin Risotto", "Lemon Pancakes", "Mushroom Stew",
          "Ginger Biscuits", "Tomato Sauce", "Spinach Pie", "Carrot Salad", "Apple Crumble", "Pepper Omelette",
          "Chickpea Curry", "Leek Gratin", "Cherry Scones", "Potato Dumplings"]
INGREDIENTS = ["flour", "butter", "sugar", "eggs", "cream", "olive oil", "garlic", "onions", "lentils", "rice",
               "tomatoes", "spinach", "carrots", "lemons", "ginger", "cinnamon", "pepper", "salt", "stock",
               "cheese", "yeast", "honey", "mushrooms", "chickpeas", "leeks", "potatoes", "parsley", "thyme"]
QUANTITIES = ["1 teaspoon of", "2 tablespoons of", "150 grams of", "200 grams of", "300 ml of", "3 cloves of",
              "half a litre of", "a pinch of", "4 handfuls of", "250 grams of"]
STEPS = [
    "Preheat the oven to {temp} degrees.",
    "Chop the {ing} finely.",
    "Whisk the {ing} with the {ing2} until pale.",
    "Simmer for {mins} minutes, stirring often.",
    "Season with salt and pepper.",
    "Knead the dough until smooth and elastic.",
    "Bake for {mins} minutes until golden.",
    "Fry the {ing} gently in olive oil.",
    "Fold in the {ing} with a spatula.",
    "Rest the mixture in the fridge for {mins} minutes.",
    "Grate the {ing} over the top.",
    "Drain and rinse the {ing} thoroughly.",
]
SERVING = ["Serve hot with crusty bread.", "Garnish with chopped parsley.", "Keeps for three days in the fridge.",
           "Best eaten fresh.", "Serve chilled with a spoonful of cream.", "Pairs well with a crisp salad."]
TEMPERATURES = ["160", "180", "190", "200", "220"]
MINUTES = ["5", "10", "15", "20", "25", "30", "45"]


def recipe(rng: random.Random) -> str:
    """One recipe: title and servings, an ingredient list, numbered method steps, a serving note."""
    ingredients = rng.sample(INGREDIENTS, rng.randint(3, 5))
    lines = [f"{rng.choice(DISHES)} (serves {rng.randint(2, 6)})",
             "Ingredients: " + "; ".join(f"{rng.choice(QUANTITIES)} {i}" for i in ingredients) + "."]
    steps = [s.format(temp=rng.choice(TEMPERATURES), mins=rng.choice(MINUTES), ing=rng.choice(ingredients),
                      ing2=rng.choice(ingredients)) for s in rng.sample(STEPS, rng.randint(3, 5))]
    lines.append("Method: " + " ".join(f"{n}. {s}" for n, s in enumerate(steps, start=1)))
    lines.append(rng.choice(SERVING))
    return "\n".join(lines)


def recipe_documents(n_docs: int, seed: str = "ptft-mini-corpus/recipes") -> list[str]:
    rng = random.Random(seed)  # str seeds are stable across runs and platforms
    return [recipe(rng) for _ in range(n_docs)]


def write_corpus(name: str, documents: list[str], n_validation: int, out_dir: Path = CORPORA_DIR) -> list[Path]:
    """Write the last `n_validation` documents to validation.jsonl and the rest to train.jsonl."""
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for split, docs in (("train", documents[:-n_validation]), ("validation", documents[-n_validation:])):
        path = folder / f"{split}.jsonl"
        path.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
        written.append(path)
    return written


def generate(out_dir: Path = CORPORA_DIR) -> list[Path]:
    """Write the generated new-domain corpus (`recipes`); returns the files written."""
    return write_corpus("recipes", recipe_documents(TRAIN_DOCS + VALIDATION_DOCS), VALIDATION_DOCS, out_dir)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    files = generate(Path(args[0]) if args else CORPORA_DIR)
    print(f"wrote {len(files)} files, {sum(f.stat().st_size for f in files) / 1e3:.1f} kB")


if __name__ == "__main__":
    main()
