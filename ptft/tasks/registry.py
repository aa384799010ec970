"""The dataset registry: every dataset of the study under its short name (docs/study.md §1).

Split choices per mode: "faithful" is the split the study's files were built from (QQP/STS-B test
splits whose hidden labels all become "no", RTE/TweetQA/GPT3NLI train splits); "fixed" is a
labelled split that is not the shot source where one exists. Sizes are the public split sizes.
"""

from __future__ import annotations

from ptft.tasks.errors import UnknownTaskError, check_choice
from ptft.tasks.types import FORMATS, MODES, TaskSpec

_ALL = FORMATS
_NO_IO = ("default", "instruct")
_SFT_SUBSET = {"train_subset_size": 6000, "subset_seed": 42}

_NLI = {
    "task_type": "classification", "family": "nli", "template": "nli", "metric": "accuracy",
    "label_words": ("entailment", "neutral", "contradiction"), "label_values": (0, 1, 2),
    "faithful_default_word": "contradiction", "chance_level": 1 / 3, "formats": _ALL,
}
_NLI_COLUMNS = {"premise": "premise", "hypothesis": "hypothesis", "label": "label"}
_PARA = {
    "task_type": "classification", "family": "paraphrase", "template": "paraphrase", "metric": "accuracy",
    "label_words": ("no", "yes"), "label_values": (0, 1), "faithful_default_word": "no",
    "chance_level": 0.5, "formats": _ALL,
}
_SETFIT_COLUMNS = {"sentence1": "text1", "sentence2": "text2", "label": "label"}
_SUMM = {
    "task_type": "generation", "family": "summarization", "template": "summarization",
    "metric": "rougeL", "formats": _ALL, "label_words": None,
}
_QGEN = {"task_type": "generation", "family": "qgen", "metric": "rougeL", "formats": _ALL,
         "single_line_target": True, "label_words": None}
_MC = {"task_type": "multiple_choice", "family": "mc", "metric": "acc", "formats": ("default",),
       "faithful_formats": ("default",), "label_words": None, "train_split": None,
       "fewshot_split": "train", "eval_split": {"faithful": "validation", "fixed": "validation"}}
_ARC_COLUMNS = {"question": "question", "choices": "choices.text", "choice_labels": "choices.label",
                "answer": "answerKey"}
_LLMBAR = {
    "task_type": "classification", "family": "llmbar", "template": "llmbar", "metric": "accuracy",
    "hub_id": "princeton-nlp/LLMBar", "label_words": ("1", "2"), "label_values": (1, 2),
    "chance_level": 0.5, "formats": ("default",), "faithful_formats": ("default",),
    "train_split": None, "eval_split": {"faithful": "train", "fixed": "train"}, "fewshot_split": "train",
    "eval_shuffle_seed": 42, "tokens_per_example": 400,
    "columns": {"instruction": "input", "output_1": "output_1", "output_2": "output_2", "label": "label"},
    "notes": "The study read the GitHub JSON (princeton-nlp/LLMBar), one file per split; the hub copy "
             "is a loading script, so point source= at a folder of <task>/train.jsonl. Fixed mode "
             "draws shots from the same file and never scores them.",
}


def _entries() -> list[TaskSpec]:
    return [
        # --- summarization -----------------------------------------------------------------
        TaskSpec(name="xsum", hub_id="EdinburghNLP/xsum", hub_config=None, train_split="train",
                 eval_split={"faithful": "test", "fixed": "test"}, fewshot_split="train",
                 columns={"document": "document", "target": "summary"}, faithful_formats=_ALL,
                 eval_size=11334, tokens_per_example=600, single_line_target=True, in_domain_evals=("xsum",),
                 split_sizes={"train": 204045, "validation": 11332, "test": 11334}, **_SUMM, **_SFT_SUBSET),
        TaskSpec(name="xlsum", hub_id="csebuetnlp/xlsum", hub_config="english", train_split="train",
                 eval_split={"faithful": "test", "fixed": "test"}, fewshot_split="train",
                 columns={"document": "text", "target": "summary"}, faithful_formats=_ALL,
                 eval_size=11535, tokens_per_example=650, single_line_target=True, in_domain_evals=("xlsum",),
                 split_sizes={"train": 306522, "validation": 11535, "test": 11535}, **_SUMM, **_SFT_SUBSET),
        TaskSpec(name="cnn", hub_id="abisee/cnn_dailymail", hub_config="3.0.0", train_split="train",
                 eval_split={"faithful": "test", "fixed": "test"}, fewshot_split="train",
                 columns={"document": "article", "target": "highlights"}, faithful_formats=_NO_IO,
                 eval_size=11490, tokens_per_example=900, study_hub_id="cnn_dailymail",
                 in_domain_evals=("cnn",),
                 notes="highlights are multi-line, so generation does not stop at a single newline",
                 split_sizes={"train": 287113, "validation": 13368, "test": 11490}, **_SUMM, **_SFT_SUBSET),
        # --- question generation -------------------------------------------------------------
        TaskSpec(name="socialiqa", hub_id="allenai/social_i_qa", hub_config=None, template="qgen_socialiqa",
                 train_split="train", eval_split={"faithful": "validation", "fixed": "validation"},
                 fewshot_split="train", faithful_formats=_ALL,
                 columns={"context": "context", "answer_a": "answerA", "answer_b": "answerB",
                          "answer_c": "answerC", "target": "question"},
                 eval_size=1954, tokens_per_example=70, study_hub_id="social_i_qa",
                 in_domain_evals=("socialiqa",),
                 split_sizes={"train": 33410, "validation": 1954}, **_QGEN, **_SFT_SUBSET),
        TaskSpec(name="tweetqa", hub_id="ucsbnlp/tweet_qa", hub_config=None, template="qgen_tweetqa",
                 train_split="train", eval_split={"faithful": "train", "fixed": "validation"},
                 fewshot_split="train", faithful_formats=_NO_IO,
                 columns={"context": "Tweet", "answer": "Answer[0]", "target": "Question"},
                 eval_size=10692, tokens_per_example=70, study_hub_id="tweet_qa",
                 in_domain_evals=("tweetqa",),
                 split_sizes={"train": 10692, "validation": 1086, "test": 1979}, **_QGEN, **_SFT_SUBSET),
        TaskSpec(name="sciq", hub_id="allenai/sciq", hub_config=None, template="qgen_sciq",
                 train_split="train", eval_split={"faithful": "test", "fixed": "test"},
                 fewshot_split="train", faithful_formats=_NO_IO,
                 columns={"context": "support", "answer_a": "correct_answer", "answer_b": "distractor1",
                          "answer_c": "distractor2", "answer_d": "distractor3", "target": "question"},
                 eval_size=1000, tokens_per_example=160, study_hub_id="sciq", in_domain_evals=("sciq",),
                 notes="question generation; the correct answer is always 'Answer A'",
                 split_sizes={"train": 11679, "validation": 1000, "test": 1000}, **_QGEN, **_SFT_SUBSET),
        # --- NLI -----------------------------------------------------------------------------
        TaskSpec(name="mnli", hub_id="nyu-mll/glue", hub_config="mnli", train_split="train",
                 eval_split={}, fewshot_split="train", columns=_NLI_COLUMNS, faithful_formats=_ALL,
                 tokens_per_example=60, study_hub_id="glue",
                 in_domain_evals=("mnli_matched", "mnli_mismatched"),
                 notes="training only: evaluate on mnli_matched / mnli_mismatched",
                 split_sizes={"train": 392702, "validation_matched": 9815, "validation_mismatched": 9832},
                 **_NLI, **_SFT_SUBSET),
        TaskSpec(name="mnli_matched", hub_id="nyu-mll/glue", hub_config="mnli_matched", train_split=None,
                 eval_split={"faithful": "validation", "fixed": "validation"}, fewshot_task="mnli",
                 fewshot_split="train", columns=_NLI_COLUMNS, faithful_formats=_ALL, eval_size=9815,
                 tokens_per_example=60, study_hub_id="glue", split_sizes={"validation": 9815, "test": 9796},
                 **_NLI),
        TaskSpec(name="mnli_mismatched", hub_id="nyu-mll/glue", hub_config="mnli_mismatched",
                 train_split=None, eval_split={"faithful": "validation", "fixed": "validation"},
                 fewshot_task="mnli", fewshot_split="train", columns=_NLI_COLUMNS, faithful_formats=_ALL,
                 eval_size=9832, tokens_per_example=60, study_hub_id="glue",
                 split_sizes={"validation": 9832, "test": 9847}, **_NLI),
        TaskSpec(name="rte", hub_id="nyu-mll/glue", hub_config="rte", train_split="train",
                 eval_split={"faithful": "train", "fixed": "validation"}, fewshot_split="train",
                 columns={"premise": "sentence1", "hypothesis": "sentence2", "label": "label"},
                 faithful_formats=_NO_IO, eval_size=2490, tokens_per_example=80, study_hub_id="glue",
                 in_domain_evals=("rte",),
                 split_sizes={"train": 2490, "validation": 277, "test": 3000},
                 notes="not_entailment (1) is verbalised 'neutral', as in the study",
                 **{**_NLI, "label_words": ("entailment", "neutral"), "label_values": (0, 1),
                    "faithful_default_word": "entailment", "chance_level": 0.5}, **_SFT_SUBSET),
        TaskSpec(name="gpt3nli", hub_id="pietrolesci/gpt3_nli", hub_config=None, train_split=None,
                 eval_split={"faithful": "train", "fixed": "train"}, fewshot_split="train",
                 columns={"premise": "text_a", "hypothesis": "text_b", "label": "label"},
                 faithful_formats=_NO_IO, eval_size=30000, tokens_per_example=50,
                 split_sizes={"train": 30000},
                 notes="only a train split exists; fixed mode draws shots from it and never scores them",
                 **_NLI),
        # --- paraphrase ----------------------------------------------------------------------
        TaskSpec(name="paws", hub_id="google-research-datasets/paws", hub_config="labeled_final",
                 train_split="train", eval_split={"faithful": "test", "fixed": "test"}, fewshot_split="train",
                 columns={"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
                 faithful_formats=_ALL, eval_size=8000, tokens_per_example=70, study_hub_id="paws",
                 in_domain_evals=("paws",),
                 split_sizes={"train": 49401, "validation": 8000, "test": 8000}, **_PARA, **_SFT_SUBSET),
        TaskSpec(name="qqp", hub_id="SetFit/qqp", hub_config=None, train_split="train",
                 eval_split={"faithful": "test", "fixed": "validation"}, fewshot_split="train",
                 columns=_SETFIT_COLUMNS, faithful_formats=_NO_IO, eval_size=390965, tokens_per_example=55,
                 in_domain_evals=("qqp",), faithful_hidden_labels=True,
                 split_sizes={"train": 363846, "validation": 40430, "test": 390965},
                 notes="faithful: hidden test labels (-1) all become 'no' (docs/study.md §1.1)",
                 **_PARA, **_SFT_SUBSET),
        TaskSpec(name="stsb", hub_id="SetFit/stsb", hub_config=None, train_split="train",
                 eval_split={"faithful": "test", "fixed": "validation"}, fewshot_split="train",
                 columns=_SETFIT_COLUMNS, faithful_formats=_NO_IO, eval_size=1379, tokens_per_example=55,
                 in_domain_evals=("stsb",), faithful_hidden_labels=True,
                 split_sizes={"train": 5749, "validation": 1500, "test": 1379},
                 notes="score > 3.5 -> 'yes'; faithful: hidden test scores (-1) all become 'no'",
                 **{**_PARA, "label_values": None, "faithful_default_word": None,
                    "label_threshold": 3.5, "label_range": (0.0, 5.0)}, **_SFT_SUBSET),
        # --- multiple choice (IT evaluation, catwalk rc style) --------------------------------
        TaskSpec(name="arc_easy", hub_id="allenai/ai2_arc", hub_config="ARC-Easy", template="mc_arc",
                 columns=_ARC_COLUMNS, eval_size=570, tokens_per_example=50, chance_level=0.25,
                 split_sizes={"train": 2251, "validation": 570, "test": 2376}, **_MC),
        TaskSpec(name="arc_challenge", hub_id="allenai/ai2_arc", hub_config="ARC-Challenge",
                 template="mc_arc", columns=_ARC_COLUMNS, eval_size=299, tokens_per_example=55,
                 chance_level=0.25, split_sizes={"train": 1119, "validation": 299, "test": 1172}, **_MC),
        TaskSpec(name="openbookqa", hub_id="allenai/openbookqa", hub_config="main", template="mc_openbookqa",
                 columns={**_ARC_COLUMNS, "question": "question_stem"}, eval_size=500,
                 tokens_per_example=35, chance_level=0.25,
                 split_sizes={"train": 4957, "validation": 500, "test": 500}, **_MC),
        TaskSpec(name="hellaswag", hub_id="Rowan/hellaswag", hub_config=None, template="mc_hellaswag",
                 columns={"activity": "activity_label", "ctx_a": "ctx_a", "ctx_b": "ctx_b",
                          "choices": "endings", "answer": "label"},
                 eval_size=10042, tokens_per_example=110, chance_level=0.25,
                 split_sizes={"train": 39905, "validation": 10042, "test": 10003}, **_MC),
        TaskSpec(name="boolq", hub_id="google/boolq", hub_config=None, template="mc_boolq",
                 columns={"passage": "passage", "question": "question", "answer": "answer"},
                 eval_size=3270, tokens_per_example=150, chance_level=0.5,
                 split_sizes={"train": 9427, "validation": 3270}, **_MC),
        TaskSpec(name="sciq_mc", hub_id="allenai/sciq", hub_config=None, template="mc_sciq",
                 columns={"context": "support", "question": "question", "correct": "correct_answer",
                          "distractor1": "distractor1", "distractor2": "distractor2",
                          "distractor3": "distractor3"},
                 eval_size=1000, tokens_per_example=150, chance_level=0.25,
                 split_sizes={"train": 11679, "validation": 1000, "test": 1000}, **_MC),
        # --- LLMBar --------------------------------------------------------------------------
        TaskSpec(name="llmbar_natural", hub_config="Natural", eval_size=100,
                 split_sizes={"train": 100}, **_LLMBAR),
        TaskSpec(name="llmbar_adversarial_neighbor", hub_config="Adversarial_Neighbor", eval_size=134,
                 split_sizes={"train": 134}, **_LLMBAR),
        TaskSpec(name="llmbar_adversarial_manual", hub_config="Adversarial_Manual", eval_size=46,
                 split_sizes={"train": 46}, **_LLMBAR),
        # --- instruction tuning --------------------------------------------------------------
        TaskSpec(name="tulu", hub_id="allenai/tulu-v2-sft-mixture", hub_config=None, task_type="chat",
                 family="instruction", template="chat", train_split="train", eval_split={},
                 columns={"messages": "messages"}, label_words=None, metric="none", formats=("default",),
                 faithful_formats=("default",), train_subset_fraction=0.05, subset_seed=42,
                 tokens_per_example=1000, split_sizes={"train": 326154}, in_domain_evals=(),
                 notes="training only; rendered with the Tulu chat template"),
    ]


REGISTRY: dict[str, TaskSpec] = {spec.name: spec for spec in _entries()}
# the study's datasets; tasks users declare join REGISTRY at run time (ptft/tasks/declared.py)
BUILTIN_TASKS: frozenset[str] = frozenset(REGISTRY)


def get_task(name: str) -> TaskSpec:
    """The registry entry for `name`; UnknownTaskError (KeyError and ValueError) with a suggestion."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownTaskError(name, REGISTRY) from None


def list_tasks() -> list[str]:
    """Every registered dataset name, in registry order."""
    return list(REGISTRY)


def in_domain(train_dataset: str) -> tuple[str, ...]:
    """The eval sets that are `train_dataset`'s own task; every other eval set is off-task for it.

    mnli -> (mnli_matched, mnli_mismatched); paws -> (paws,); tulu -> () (instruction tuning).
    UnknownTaskError for an unknown name; ValueError for an eval-only dataset (nothing trains on it).
    """
    spec = get_task(train_dataset)
    if spec.train_split is None:
        raise ValueError(f"{train_dataset} is an eval-only dataset, not a training set")
    return spec.in_domain_evals


def require_format(spec: TaskSpec, fmt: str, mode: str) -> None:
    """ValueError unless `spec` renders in (fmt, mode)."""
    check_choice("format", fmt, FORMATS)
    check_choice("mode", mode, MODES)
    if not spec.supports(fmt, mode):
        if mode == "faithful" and spec.declaration_digest:
            raise ValueError(f"{spec.name} is a declared task: it renders in fixed mode only (faithful mode "
                             "is the study's code, for its own datasets; docs/tasks.md)")
        if fmt in spec.formats:
            raise ValueError(
                f"{spec.name}: the study has no {fmt!r} format for this dataset, so faithful mode "
                f"cannot render it (faithful formats: {spec.faithful_formats}); use mode='fixed'"
            )
        raise ValueError(f"{spec.name}: format {fmt!r} is not supported (formats: {spec.formats})")
