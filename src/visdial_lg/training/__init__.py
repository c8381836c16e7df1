"""Training helpers: optimiser and LR schedule, checkpoints, distributed setup."""
