"""Stage `train` (workflow/rules/train.smk): one run, resumable, on CPU or GPUs (`visdial-lg train`;
docs/training.md).

- `loop`: the training loop, read top to bottom
- `dataset`: the torch Dataset of dialogs over the tokens and features files
- `optim`: LTMI's Adam and learning-rate schedule
- `checkpoint`: atomic checkpoints, RNG states, rebuilding a trained model
- `fingerprint`: what a resumed state must match
- `distributed`: torchrun process groups; `monitor`: losses, log.csv, TensorBoard
"""
