"""The embedded demo (`ptft demo`): pre-train a tiny OLMo for real checkpoints, then run the study on them.

`corpus` generates the pre-training text, `pretrain` trains the tokenizer and the model and saves the
checkpoints, `profiles` sizes the grid (full and `--quick`), and `command.demo_main` runs it all.
"""
