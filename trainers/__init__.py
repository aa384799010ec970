"""Supervised fine-tuning under DeepSpeed ZeRO, runnable bare, under torchrun, or as Ray Train workers."""
