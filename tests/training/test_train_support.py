"""The tiny synthetic train inputs (tests/helpers/synthetic.py) load as batches of docs/formats.md."""

from __future__ import annotations

from helpers.synthetic import FEAT_DIM, O, Q_LEN, R
from helpers.tiny_data import write_tiny_dataset


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
