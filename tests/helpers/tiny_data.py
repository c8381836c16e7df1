"""Tiny synthetic train inputs and configs for seconds-long CPU runs (training,
evaluation, report and feature tests)."""

from __future__ import annotations

from pathlib import Path

from helpers.synthetic import write_synthetic_inputs
from visdial_lg.core.config import Config

TINY_MODEL = {"hidden": 16, "embed": 8, "blocks": 1, "heads": 2, "pad_slots": 1,
              "dropout": 0.1, "lstm_layers": 1, "box_bins": 8}


def tiny_config(**train) -> Config:
    """A config for a seconds-long CPU run; `train` overrides train keys."""
    train_cfg = {"batch_size": 2, "epochs": 3, "lr": 1e-3, "warmup_epochs": 1, "decay_every": 1,
                 "num_workers": 0, "gpus": 0, "precision": "fp32", "log_every": 1, "seeds": [0]}
    train_cfg.update(train)
    return Config.from_dict({"model": dict(TINY_MODEL), "lg": {"lambda": 1.0}, "train": train_cfg})


def write_tiny_dataset(root: Path, dialogs: int = 4, boxes: int = 6) -> dict[str, Path]:
    return write_synthetic_inputs(root, dialogs=dialogs, vocab_size=30, boxes=boxes)
