"""ptft: pre-training x fine-tuning studies at cluster scale."""

__version__ = "0.1.0"
