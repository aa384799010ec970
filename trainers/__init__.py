"""Supervised fine-tuning under DeepSpeed ZeRO, runnable bare or under torchrun; Ray runs it from ray_jobs/."""

PTFT_PACKAGE = True  # ptft.core.packages checks this
