"""Entry points for `ray job submit`: the grid, eval fan-out, the ledger, W&B wiring."""
