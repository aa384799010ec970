"""The vocabulary trainers and evaluators share: datasets, formats, k-shot sets (docs/study.md §1, §2, §5).

    from ptft.tasks import get_task, in_domain, training_set, eval_set
    train = training_set("mnli", "default", source="mini")
    evals = eval_set("mnli_matched", "instruct", "fixed", shots=4, source="mini")
    in_domain("mnli")  # ("mnli_matched", "mnli_mismatched"): the eval sets that are mnli's own task
    for declared in load_task_file("configs/tasks/rte_declared.yaml"):  # tasks users declare (docs/tasks.md)
        register_declared(declared)
"""

from ptft.tasks.corpora import (
    CorpusDocuments,
    CorpusSpec,
    UnknownCorpusError,
    corpus_documents,
    get_corpus,
    is_corpus,
    list_corpora,
    register_corpus,
)
from ptft.tasks.declared import DeclarationConflict, TaskDeclaration, declared_tasks, register_declared
from ptft.tasks.declared_files import TaskDeclarationError, declarations_from_spec_value, load_task_file
from ptft.tasks.errors import DataError, UnknownTaskError
from ptft.tasks.formats.render import join_space, token_boundary
from ptft.tasks.formats.templates import template_version
from ptft.tasks.loading import load_rows, load_split
from ptft.tasks.preferences import (  # preference pairs for DPO (docs/dpo.md)
    PreferencePair,
    PreferenceSet,
    PreferenceSpec,
    get_preference_set,
    is_preference_set,
    list_preference_sets,
    preference_set,
)
from ptft.tasks.registry import get_task, in_domain, list_tasks
from ptft.tasks.sets import eval_set, training_rows, training_set
from ptft.tasks.types import (
    FORMATS,
    MODES,
    TASK_TYPES,
    EvalExample,
    EvalSet,
    Rendered,
    RenderedSet,
    Segment,
    TaskSpec,
)

__all__ = [
    "FORMATS", "MODES", "TASK_TYPES", "DataError", "DeclarationConflict", "EvalExample", "EvalSet", "Rendered",
    "RenderedSet", "Segment", "TaskDeclaration", "TaskDeclarationError", "TaskSpec", "UnknownTaskError",
    "declarations_from_spec_value", "declared_tasks", "eval_set", "get_task", "in_domain", "list_tasks",
    "load_rows", "load_task_file", "join_space", "load_split", "register_declared", "template_version",
    "token_boundary", "training_rows", "training_set",
    # raw-text corpora for continual pre-training (docs/continual_pt.md)
    "CorpusDocuments", "CorpusSpec", "UnknownCorpusError", "corpus_documents", "get_corpus", "is_corpus",
    "list_corpora", "register_corpus",
    # preference pairs for DPO (docs/dpo.md)
    "PreferencePair", "PreferenceSet", "PreferenceSpec", "get_preference_set", "is_preference_set",
    "list_preference_sets", "preference_set",
]
