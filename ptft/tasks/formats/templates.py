"""The prompt templates, as data: every string a model sees comes from this file.

`TEMPLATES[key][mode][fmt]` is a `str.format` pattern over our field names (see each task's
`columns`). Faithful patterns are the study's strings byte for byte (open_instruct/
format_generalization.py), glitches included: "\\n ### " with a space after the newline, no space
before "Answer C:" in the SocialIQa/SciQ prompts, no separators in SocialIQa's IO format, no newline
before LLMBar's "### Output_1". Fixed patterns keep each format's shape and repair only the missing
separators.

Few-shot layout (`FEWSHOT`):
- faithful: prefix = concat of prompt + completion + "\\n" over the shots (no join space, docs/study.md §5.1).
- fixed: each shot is prompt + join + completion + "\\n\\n", the join space following the training
  rule, so a shot reads exactly like a training sequence; "\\n\\n" ends an example.
- multiple choice (both modes, lm-eval/catwalk style): query + " " + gold option + "\\n\\n".
- chat (LLMBar): faithful wraps the item in the OLMo chat format the study used, including its
  assistant turn (the gold label); fixed renders shots as user/assistant turns and asks the item
  as a fresh user turn.

Stop sequences (fixed mode, generation): "\\n\\n" ends a fixed-mode shot in every format; the default
format also stops at "\\n###"/"\\n ###" (the next marker block); single-line targets (all but CNN,
whose highlights are multi-line) also stop at "\\n".
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from ptft.core.ids import content_hash

if TYPE_CHECKING:
    from ptft.tasks.types import TaskSpec

# Bump when render/assembly *code* changes what a template produces (the strings below are hashed).
RENDER_VERSION = 1

_NLI = {
    "default": "### Input_1: {premise}\n ### Input_2: {hypothesis}\n ### Inference: ",
    "instruct": "Consider the following texts: Text 1: {premise} Text 2: {hypothesis} The relation is ",
    "io": "{premise} {hypothesis}",
}
_PARAPHRASE = {
    "default": "### Input_1: {sentence1}\n ### Input_2: {sentence2}\n ### Paraphrase Classification: ",
    # U+2019 (curly apostrophe) as in the study's code
    "instruct": "Let\u2019s compare the two sentences: Sentence_1: {sentence1} Sentence_2: {sentence2} Are they paraphrasing?: ",
    "io": "{sentence1} {sentence2}",
}
_SUMMARIZATION = {
    "default": "### Input: {document}\n ### Summary: ",
    "instruct": "Please read the following text: {document} Provide a summary: ",
    "io": "{document}",
}

_FAITHFUL: dict[str, dict[str, str]] = {
    "nli": _NLI,
    "paraphrase": _PARAPHRASE,
    "summarization": _SUMMARIZATION,
    "qgen_socialiqa": {
        "default": "### Input: {context}\n ### Answer: Answer A: {answer_a} Answer B: {answer_b}Answer C: {answer_c}\n ### Question: ",
        "instruct": "Given the context: {context} And the answer: Answer A: {answer_a} Answer B: {answer_b}Answer C: {answer_c}Generate a suitable question: ",
        "io": "{context}{answer_a}{answer_b}{answer_c}",
    },
    "qgen_tweetqa": {
        "default": "### Input: {context}\n ### Answer: {answer}\n ### Question: ",
        "instruct": "Given the context: {context} And the answer: {answer}Generate a suitable question: ",
    },
    "qgen_sciq": {
        "default": "### Input: {context}\n ### Answer: Answer A: {answer_a} Answer B: {answer_b} Answer C: {answer_c}Answer D: {answer_d}\n ### Question: ",
        "instruct": "Given the context: {context} And the answer: Answer A: {answer_a} Answer B: {answer_b}Answer C: {answer_c}Answer D: {answer_d}Generate a suitable question: ",
    },
    "llmbar": {
        "default": "### Instruction: {instruction}### Output_1: {output_1}\n ### Output_2: {output_2}\n ### Instruction Following: ",
    },
    # multiple choice: the query; candidates are " " + each option (lm-eval / catwalk style)
    "mc_arc": {"default": "Question: {question}\nAnswer:"},
    "mc_openbookqa": {"default": "{question}"},
    "mc_hellaswag": {"default": "{activity}: {ctx_a} {ctx_b}"},
    "mc_boolq": {"default": "{passage}\nQuestion: {question}?\nAnswer:"},
    "mc_sciq": {"default": "{context}\nQuestion: {question}\nAnswer:"},
    # chat: rendered turn by turn from CHAT below
    "chat": {"default": "<chat>"},
}

# Fixed mode repairs the missing separators; everything else is the study's string.
_FIXED = copy.deepcopy(_FAITHFUL)
_FIXED["qgen_socialiqa"] = {
    "default": "### Input: {context}\n ### Answer: Answer A: {answer_a} Answer B: {answer_b} Answer C: {answer_c}\n ### Question: ",
    "instruct": "Given the context: {context} And the answer: Answer A: {answer_a} Answer B: {answer_b} Answer C: {answer_c} Generate a suitable question: ",
    "io": "{context} {answer_a} {answer_b} {answer_c}",
}
_FIXED["qgen_tweetqa"] = {
    "default": "### Input: {context}\n ### Answer: {answer}\n ### Question: ",
    "instruct": "Given the context: {context} And the answer: {answer} Generate a suitable question: ",
    "io": "{context} {answer}",
}
_FIXED["qgen_sciq"] = {
    "default": "### Input: {context}\n ### Answer: Answer A: {answer_a} Answer B: {answer_b} Answer C: {answer_c} Answer D: {answer_d}\n ### Question: ",
    "instruct": "Given the context: {context} And the answer: Answer A: {answer_a} Answer B: {answer_b} Answer C: {answer_c} Answer D: {answer_d} Generate a suitable question: ",
    "io": "{context} {answer_a} {answer_b} {answer_c} {answer_d}",
}
_FIXED["llmbar"] = {
    "default": "### Instruction: {instruction}\n ### Output_1: {output_1}\n ### Output_2: {output_2}\n ### Instruction Following: ",
}

TEMPLATES: dict[str, dict[str, dict[str, str]]] = {
    key: {"faithful": _FAITHFUL[key], "fixed": _FIXED[key]} for key in _FAITHFUL
}

# Post-processing applied to a rendered MC query (hashed with the template).
TEMPLATE_OPTIONS: dict[str, dict[str, object]] = {
    "mc_hellaswag": {"preprocess": "hellaswag"},  # lm-eval's bracket/title cleanup, ctx_b capitalised
    "mc_sciq": {"strip": True},  # an empty support must not leave a leading newline
}

# Open-instruct's Tulu chat format (finetune.py): contents are stripped; the text is stripped at the end.
CHAT = {
    "system": "<|system|>\n{content}\n",
    "user": "<|user|>\n{content}\n",
    "assistant_header": "<|assistant|>\n",
    "turn_end": "\n",  # after an assistant turn's eos, trained, dropped after the last turn
}

# The eos string the study's OLMo chat wrapper hard-codes (eval/templates.py); also used as its bos.
OLMO_CHAT_EOS = "|||IP_ADDRESS|||"

FEWSHOT = {
    "faithful": "{prompt}{completion}\n",
    "fixed": "{prompt}{join}{completion}\n\n",
    "multiple_choice": "{prompt} {completion}\n\n",
    # LLMBar (faithful): the study passed the whole messages list, assistant turn included, to the
    # OLMo chat wrapper, so the item's gold label sits inside its own context.
    "chat_faithful_query": OLMO_CHAT_EOS + "<|user|>\n{prompt}\n<|assistant|>\n{completion}" + OLMO_CHAT_EOS + "\n<|assistant|>\n",
    "chat_fixed_shot": "<|user|>\n{prompt}\n<|assistant|>\n{completion}\n",
    "chat_fixed_query": "<|user|>\n{prompt}\n<|assistant|>\n",
}

STOP_SEQUENCES = {
    "default": ("\n###", "\n ###", "\n\n"),
    "instruct": ("\n\n",),
    "io": ("\n\n",),
}

# docs/study.md §5.2: the next-word candidate strings of eval/predict_classification.py, by family.
FAITHFUL_VERBALIZERS = {
    "nli": ("entailment", "neutral", "contradiction", " entailment", " neutral", " contradiction"),
    "paraphrase": ("yes", "no", " yes", " no"),
    "llmbar": ("1", "2", " 1", " 2"),
}


def template_string(key: str, fmt: str, mode: str) -> str:
    """The pattern for (template key, format, mode); KeyError when the template has no such format."""
    return TEMPLATES[key][mode][fmt]


def stop_sequences(task_type: str, fmt: str, mode: str, single_line: bool) -> tuple[str, ...]:
    """Stop sequences for greedy generation: fixed mode only (the study had none)."""
    if task_type != "generation" or mode != "fixed":
        return ()
    stops = STOP_SEQUENCES[fmt]
    return ("\n", *stops) if single_line else stops


def task_stop_sequences(spec: TaskSpec, fmt: str, mode: str) -> tuple[str, ...]:
    """A task's stop sequences in (fmt, mode): a declared task's own list (docs/tasks.md), else the format's."""
    if spec.stop is not None and spec.task_type == "generation" and mode == "fixed":
        return spec.stop
    return stop_sequences(spec.task_type, fmt, mode, spec.single_line_target)


def fewshot_rules(task_type: str, mode: str) -> dict[str, str]:
    """The few-shot layout strings a (task type, mode) uses."""
    if task_type == "multiple_choice":
        return {"shot": FEWSHOT["multiple_choice"]}
    if task_type == "chat":
        if mode == "faithful":
            return {"shot": FEWSHOT["faithful"], "query": FEWSHOT["chat_faithful_query"]}
        return {"shot": FEWSHOT["chat_fixed_shot"], "query": FEWSHOT["chat_fixed_query"]}
    return {"shot": FEWSHOT[mode]}


def template_version(task: str, fmt: str, mode: str) -> str:
    """Short hash of everything that defines how `task` renders in (fmt, mode); loads no data."""
    from ptft.tasks.registry import get_task, require_format

    spec = get_task(task)
    require_format(spec, fmt, mode)
    eval_type = "chat" if spec.family == "llmbar" else spec.task_type
    payload = {
        "render_version": RENDER_VERSION,
        "task_type": spec.task_type,
        "fmt": fmt,
        "mode": mode,
        "template": template_string(spec.template, fmt, mode),
        "options": TEMPLATE_OPTIONS.get(spec.template, {}),
        "chat": CHAT if spec.task_type == "chat" else None,
        "fewshot": fewshot_rules(eval_type, mode),
        "stop": list(task_stop_sequences(spec, fmt, mode)),
        "columns": spec.columns,
        "label_words": spec.label_words,
        "label_values": spec.label_values,
        "faithful_default_word": spec.faithful_default_word if mode == "faithful" else None,
        "label_threshold": spec.label_threshold,
        "label_range": spec.label_range if mode == "fixed" else None,
        "verbalizers": FAITHFUL_VERBALIZERS.get(spec.family, ()),
    }
    if spec.declaration_digest:  # a declared task: its source, splits, subset rule, metric (docs/tasks.md)
        payload["declaration"] = spec.declaration_digest  # added only here, so built-in versions never move
    return content_hash(payload, length=16)
