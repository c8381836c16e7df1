"""Tiny synthetic train inputs and configs for the training tests; the test below checks
that the synthetic files (visdial_lg.training.synthetic) load as batches of docs/formats.md."""

from __future__ import annotations

from pathlib import Path

from visdial_lg.training.synthetic import FEAT_DIM, O, Q_LEN, R, write_synthetic_inputs

TINY_MODEL = {"hidden": 16, "embed": 8, "blocks": 1, "heads": 2, "pad_slots": 1,
              "dropout": 0.1, "lstm_layers": 1, "box_bins": 8}


def tiny_config(**train) -> dict:
    """A config for a seconds-long CPU run; `train` overrides train keys."""
    train_cfg = {"batch_size": 2, "epochs": 3, "lr": 1e-3, "warmup_epochs": 1, "decay_every": 1,
                 "num_workers": 0, "gpus": 0, "precision": "fp32", "log_every": 1, "seed": 0}
    train_cfg.update(train)
    return {"model": dict(TINY_MODEL), "lg": {"lambda": 1.0}, "train": train_cfg}


def write_tiny_dataset(root: Path, dialogs: int = 4, boxes: int = 6) -> dict[str, Path]:
    return write_synthetic_inputs(root, dialogs=dialogs, vocab_size=30, boxes=boxes)


def test_tiny_dataset_loads_as_batches(tmp_path):
    import torch

    from visdial_lg.training.dataset import VisDialDataset, collate

    paths = write_tiny_dataset(tmp_path, dialogs=3, boxes=5)
    dataset = VisDialDataset(paths["tokens"], paths["features"])
    batch = collate([dataset[i] for i in range(len(dataset))])
    assert batch["img_feat"].shape == (3, 5, FEAT_DIM)
    assert batch["opts"].shape == (3, R, O, Q_LEN)
    answers = torch.gather(batch["opts"], 2, batch["gt_index"][:, :, None, None].expand(-1, -1, 1, Q_LEN))
    assert torch.equal(answers[:, :, 0], batch["ans"].masked_fill(torch.arange(Q_LEN) >= 18, 0))
