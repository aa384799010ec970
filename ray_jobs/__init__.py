"""Ray wiring: the Tune experiment and its Train workers, the eval fan-out, W&B runs, `ray job submit`."""

PTFT_PACKAGE = True  # ptft.core.packages checks this
