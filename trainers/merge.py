"""Merge a saved LoRA adapter into its base model and save a plain Hugging Face model.

`python -m trainers.merge ADAPTER_DIR OUT_DIR`: the trainer runs this in a fresh process after training
(docs/methods.md §3), so the merge never runs under ZeRO-3 and the merged folder loads with plain
`from_pretrained` (and so in lm-evaluation-harness and vLLM). The base is read from the adapter's
`adapter_config.json` (`base_model_name_or_path`, `revision`); weights are merged in fp32.
"""

from __future__ import annotations

import sys


def merge_lora(adapter_dir: str, out_dir: str) -> str:
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = PeftConfig.from_pretrained(adapter_dir)
    if config.peft_type != "LORA":
        raise ValueError(f"{adapter_dir}: a {config.peft_type} adapter cannot be merged into its base")
    base = AutoModelForCausalLM.from_pretrained(config.base_model_name_or_path, revision=config.revision,
                                                dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m trainers.merge ADAPTER_DIR OUT_DIR", file=sys.stderr)
        return 2
    merge_lora(*args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
