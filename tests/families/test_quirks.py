"""Each family's quirks on its tiny stand-in, without training: pad tokens, BOS, tied embeddings, LoRA
target modules (docs/families.md §3)."""

from __future__ import annotations

import pytest

from ptft.core.tiny import TINY_ARCHITECTURES
from ptft.tasks.types import Rendered, Segment
from tests.families.conftest import ARCHITECTURES, TIED
from trainers.examples import IGNORE_INDEX, build_examples, leading_special_ids, tokenize_rendered
from trainers.methods import ATTENTION_MODULES, MLP_MODULES, LoraMethod

PROMPT = "### Input_1: A man sleeps.\n ### Input_2: A man is awake.\n ### Inference:"
COMPLETION = " contradiction"


def _tokenizer(folder: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _model(folder: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder)


def _rendered(example_id: str = "a") -> Rendered:
    segments = (Segment(PROMPT, False), Segment(COMPLETION, True, eos=True))
    return Rendered(example_id, PROMPT, COMPLETION, segments, None, ())


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_stand_in_is_its_familys_class(arch, tiny_family_model):
    model = _model(tiny_family_model(arch))
    assert type(model).__name__ == TINY_ARCHITECTURES[arch].model_class
    assert model.config.model_type == arch
    assert model.config.tie_word_embeddings is TIED[arch]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_no_pad_token_means_eos_pads(arch, tiny_family_model):
    """Pythia's and Llama's tokenizers have no pad token: the evaluator pads with eos (an id of 0 is an id)."""
    import torch

    from evals.model_loading import LoadedModel

    tokenizer = _tokenizer(tiny_family_model(arch))
    expected_pad = TINY_ARCHITECTURES[arch].tokenizer.pad
    assert (tokenizer.pad_token is None) == (expected_pad is None)
    lm = LoadedModel(model=None, tokenizer=tokenizer, device=torch.device("cpu"), dtype=torch.float32, max_length=64)
    if expected_pad is None:
        assert lm.pad_id == tokenizer.eos_token_id
    else:
        assert lm.pad_id == tokenizer.pad_token_id != tokenizer.eos_token_id
    if arch == "gpt_neox":  # Pythia: eos = bos = id 0, which must not read as "missing"
        assert tokenizer.eos_token_id == 0 and lm.pad_id == 0 and lm.empty_context_id == 0


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_bos_once_at_the_start_and_labels_on_the_completion(arch, tiny_family_model):
    tokenizer = _tokenizer(tiny_family_model(arch))
    adds_bos = TINY_ARCHITECTURES[arch].tokenizer.adds_bos
    assert leading_special_ids(tokenizer) == ((tokenizer.bos_token_id,) if adds_bos else ())

    example, _ = tokenize_rendered(_rendered(), tokenizer, max_length=256)
    ids, labels = list(example.input_ids), list(example.labels)
    prompt_ids = tokenizer(PROMPT)["input_ids"]  # with special tokens: what the evaluator's context is
    completion_ids = tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    assert ids == prompt_ids + completion_ids + [eos]
    if adds_bos:
        assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    else:
        assert tokenizer.bos_token_id not in ids[:-1]  # OLMo/Pythia: bos is eos, and only the end has it
    assert labels == [IGNORE_INDEX] * len(prompt_ids) + completion_ids + [eos]
    assert example.num_targets == len(completion_ids) + 1


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_training_tokens_are_what_the_evaluator_scores(arch, tiny_family_model):
    """The evaluator's context and continuation ids for the same prompt are the training sequence's."""
    from evals.loglikelihood import encode_loglikelihood
    from evals.requests import LoglikelihoodRequest

    tokenizer = _tokenizer(tiny_family_model(arch))
    example, _ = tokenize_rendered(_rendered(), tokenizer, max_length=256)
    [encoded] = encode_loglikelihood(tokenizer, [LoglikelihoodRequest(PROMPT, (COMPLETION,))], 256, fallback_id=0)
    assert list(example.input_ids) == encoded.context + encoded.continuations[0] + [tokenizer.eos_token_id]
    trained = [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX]
    assert trained == encoded.continuations[0] + [tokenizer.eos_token_id]


def test_packed_examples_each_start_with_bos(tiny_family_model):
    """Packing a BOS tokenizer's examples keeps one BOS per example, the first token of each (never trained)."""
    from trainers.collate import collate

    tokenizer = _tokenizer(tiny_family_model("llama"))
    examples = build_examples([_rendered("a"), _rendered("b")], tokenizer, max_length=256).examples
    batch = collate([list(examples)], pad_id=tokenizer.eos_token_id)
    ids = batch.input_ids[0].tolist()
    starts = [0, len(examples[0])]
    assert [i for i, t in enumerate(ids) if t == tokenizer.bos_token_id] == starts
    assert all(batch.labels[0, s].item() == IGNORE_INDEX for s in starts)


def _linear_names(model) -> dict[int, set[str]]:
    """Per decoder layer, the leaf names of its linear modules."""
    import torch

    layers: dict[int, set[str]] = {}
    for name, module in model.named_modules():
        parts = name.split(".")
        if isinstance(module, torch.nn.Linear) and "layers" in parts:
            layers.setdefault(int(parts[parts.index("layers") + 1]), set()).add(parts[-1])
    return layers


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_lora_target_modules_exist_in_every_layer(arch, tiny_family_model):
    model = _model(tiny_family_model(arch))
    model_type = model.config.model_type
    layers = _linear_names(model)
    assert len(layers) == model.config.num_hidden_layers
    for names in layers.values():
        assert set(ATTENTION_MODULES[model_type]) <= names, (model_type, names)
        assert set(MLP_MODULES[model_type]) <= names, (model_type, names)
        assert set(ATTENTION_MODULES[model_type]) | set(MLP_MODULES[model_type]) == names  # nothing missed


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_lora_attention_preset_wraps_each_layers_projections(arch, tiny_family_model):
    """peft has no default targets for OLMo: the preset's names must find modules (peft raises if none)."""
    import torch
    from peft import LoraConfig, get_peft_model

    model = _model(tiny_family_model(arch))
    targets = LoraMethod(target_modules="attention").resolved_targets(model.config.model_type)
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=targets, task_type="CAUSAL_LM"))
    wrapped = {name for name, module in peft_model.named_modules() if hasattr(module, "lora_A")
               and isinstance(getattr(module, "base_layer", None), torch.nn.Linear)}
    assert len(wrapped) == len(targets) * model.config.num_hidden_layers
    assert not any("lm_head" in name or "embed" in name for name in wrapped)


@pytest.mark.parametrize("arch", [a for a in ARCHITECTURES if TIED[a]])
def test_tied_embeddings_share_one_tensor(arch, tiny_family_model):
    from safetensors import safe_open

    folder = tiny_family_model(arch)
    model = _model(folder)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    with safe_open(f"{folder}/model.safetensors", "pt") as f:  # saved once; the head is re-tied on load
        assert not any(key.startswith("lm_head") or key.startswith("embed_out") for key in f.keys())
