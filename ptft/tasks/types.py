"""The value types of the tasks API: one registry entry, and rendered training and eval examples."""

from __future__ import annotations

from dataclasses import dataclass, field

FORMATS = ("default", "instruct", "io")
MODES = ("faithful", "fixed")
TASK_TYPES = ("classification", "generation", "multiple_choice", "chat")
FAMILIES = ("nli", "paraphrase", "summarization", "qgen", "mc", "llmbar", "instruction")


@dataclass(frozen=True)
class TaskSpec:
    """One registry entry: where a dataset lives, how its columns map, how it is scored."""

    name: str  # the study's short name: "mnli", "mnli_matched", "xsum", "sciq_mc", ...
    hub_id: str
    hub_config: str | None
    task_type: str  # one of TASK_TYPES
    family: str  # one of FAMILIES
    train_split: str | None  # None: eval-only dataset
    eval_split: dict[str, str]  # mode -> split; {} for training-only datasets (mnli, tulu)
    columns: dict[str, str]  # our field -> hub column ("Answer[0]": first item; "choices.text": a key)
    label_words: tuple[str, ...] | None
    metric: str  # "accuracy" | "rougeL" | "acc" | "none" (tulu: training only)
    formats: tuple[str, ...]  # every format it renders in (fixed mode)
    train_subset_size: int | None = None  # 6000 in the study
    train_subset_fraction: float | None = None  # tulu: 0.05
    subset_seed: int = 42
    eval_size: int | None = None  # size of the study's (faithful) eval split
    tokens_per_example: int = 100  # rough prompt+completion tokens (OLMo tokenizer), for cost estimates
    chance_level: float | None = None  # uniform-guess accuracy; None for generation/chat
    # --- additions to the contract ---
    template: str = ""  # key into tasks.formats.templates.TEMPLATES
    faithful_formats: tuple[str, ...] = ()  # formats the study's code actually has (faithful mode)
    fewshot_task: str | None = None  # fixed mode: task whose split supplies shots (None: this task)
    fewshot_split: str | None = None  # fixed mode: split the shots come from
    label_values: tuple[int, ...] | tuple[str, ...] | None = None  # raw label of each label word (index rule)
    faithful_default_word: str | None = None  # faithful: any other raw label becomes this word
    label_threshold: float | None = None  # stsb: score > threshold -> label_words[1]
    label_range: tuple[float, float] | None = None  # stsb (fixed): valid score range
    eval_shuffle_seed: int | None = None  # faithful: the study shuffles the eval file (llmbar: 42)
    single_line_target: bool = False  # generation: gold targets never contain a newline
    split_sizes: dict[str, int] = field(default_factory=dict)  # real split sizes, for estimates
    study_hub_id: str | None = None  # the id the study's code used, when it differs
    # Training sets: the eval sets that are its own task (in-domain); every other eval set is off-task,
    # where forgetting is read. () for eval-only datasets and for tulu (instruction tuning has none).
    in_domain_evals: tuple[str, ...] = ()
    # faithful mode scores a hidden-label split whose golds all became one word (QQP/STS-B, docs/study.md §1.1)
    faithful_hidden_labels: bool = False
    notes: str = ""
    # --- tasks users declare (ptft/tasks/declared.py, docs/tasks.md); built-ins leave these empty ---
    stop: tuple[str, ...] | None = None  # generation stop sequences in every format (None: the format's own)
    data_dir: str | None = None  # a folder of <split>.jsonl that is this task's data, whatever the source
    declaration_digest: str = ""  # hash of the declaration's defining fields; part of template_version

    def __hash__(self) -> int:  # dict fields are unhashable; the name is the identity
        return hash(self.name)

    def supports(self, fmt: str, mode: str) -> bool:
        """True when this dataset renders in `fmt` under `mode` (faithful: only the study's formats)."""
        return fmt in (self.faithful_formats if mode == "faithful" else self.formats)

    def eval_size_for(self, mode: str) -> int | None:
        """Rows in the eval split of `mode` (None when unknown or training-only)."""
        split = self.eval_split.get(mode)
        return self.split_sizes.get(split) if split else None

    def label_word(self, raw: object, mode: str = "fixed") -> str:
        """The label word of a raw hub label. Raises ValueError when `raw` is outside the label set.

        faithful mode maps the way the study's code did: every unknown value becomes
        `faithful_default_word` (so QQP/STS-B hidden test labels -1 all become "no").
        """
        if not self.label_words:
            raise ValueError(f"{self.name} has no label words")
        if self.label_threshold is not None:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise ValueError(f"label {raw!r} is not a number")
            if mode == "fixed" and self.label_range is not None:
                low, high = self.label_range
                if not low <= raw <= high:
                    raise ValueError(f"score {raw!r} is outside {self.label_range} (a hidden label?)")
            return self.label_words[1] if raw > self.label_threshold else self.label_words[0]
        values = self.label_values or tuple(range(len(self.label_words)))
        # a declared task may name its raw labels as text ("positive"); built-ins are all integers
        if (isinstance(raw, str) or isinstance(raw, int) and not isinstance(raw, bool)) and raw in values:
            return self.label_words[values.index(raw)]
        if mode == "faithful" and self.faithful_default_word is not None:
            return self.faithful_default_word
        raise ValueError(f"label {raw!r} is not one of {values}")

    def label_index(self, word: str) -> int:
        """Index of a label word (surrounding whitespace ignored) in `label_words`."""
        if not self.label_words or word.strip() not in self.label_words:
            raise ValueError(f"{word!r} is not a label word of {self.name}: {self.label_words}")
        return self.label_words.index(word.strip())

    def label_value(self, word: str) -> int | str:
        """The raw hub label a label word stands for (stsb: 0/1 for below/above the threshold)."""
        index = self.label_index(word)
        return self.label_values[index] if self.label_values else index


@dataclass(frozen=True)
class Segment:
    """A piece of a training sequence."""

    text: str
    train: bool  # loss on these tokens?
    eos: bool = False  # append the tokenizer's eos after this segment (same train flag)


@dataclass(frozen=True)
class Rendered:
    """One example rendered in one format and mode."""

    example_id: str
    prompt: str
    completion: str  # gold target text, never ""
    segments: tuple[Segment, ...]  # training view; concatenated they are prompt + join + completion
    gold_index: int | None  # classification / multiple choice: index into candidates
    candidates: tuple[str, ...]  # exact continuation strings after the prompt


@dataclass(frozen=True)
class RenderedSet:
    task: TaskSpec
    fmt: str
    mode: str
    examples: tuple[Rendered, ...]
    checksum: str
    counts: dict[str, int]


@dataclass(frozen=True)
class EvalExample:
    example_id: str
    context: str  # few-shot prefix + prompt: exactly what the model sees
    target: str  # gold completion text (bare, without the join space)
    gold_index: int | None
    candidates: tuple[str, ...]  # continuations to score (classification/MC), label order
    shots_used: int
    shots_dropped: int


@dataclass(frozen=True)
class EvalSet:
    task: TaskSpec
    fmt: str
    mode: str
    shots: int
    examples: tuple[EvalExample, ...]
    stop_sequences: tuple[str, ...]  # generation, fixed mode only; () in faithful
    faithful_verbalizers: tuple[str, ...]  # docs/study.md §5.2 next-word candidate strings
    checksum: str  # sha256 over the rendered contexts/targets/candidates
    counts: dict[str, int]  # rows, scored, shots dropped, over budget, skipped ... never silent
    template_version: str = ""
    split: str = ""
