"""Tiny synthetic train inputs (tokens HDF5, features HDF5, vocabulary) for the training tests,
written from docs/formats.md, plus the tiny configs; the test below checks the files load."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

R, O, Q_LEN, CAP_LEN = 10, 100, 20, 40
FEAT_DIM = 2048

TINY_MODEL = {"hidden": 16, "embed": 8, "blocks": 1, "heads": 2, "pad_slots": 1,
              "dropout": 0.1, "lstm_layers": 1, "box_bins": 8}


def tiny_config(**train) -> dict:
    """A config for a seconds-long CPU run; `train` overrides train keys."""
    train_cfg = {"batch_size": 2, "epochs": 3, "lr": 1e-3, "warmup_epochs": 1, "decay_every": 1,
                 "num_workers": 0, "gpus": 0, "precision": "fp32", "log_every": 1, "seed": 0}
    train_cfg.update(train)
    return {"model": dict(TINY_MODEL), "lg": {"lambda": 1.0}, "train": train_cfg}


def _token_rows(rng, n, width, lo, hi, vocab):
    lens = rng.integers(lo, hi + 1, size=n).astype(np.int32)  # [n]
    tokens = rng.integers(4, vocab, size=(n, width)).astype(np.int32)  # [n, width]
    tokens[np.arange(width)[None, :] >= lens[:, None]] = 0
    return tokens, lens


def write_tiny_dataset(root: Path, dialogs: int = 8, vocab_size: int = 30, boxes: int = 6,
                       seed: int = 0) -> dict[str, Path]:
    """Write vocab.json, train.h5 (tokens) and features.h5 under `root`; returns their paths."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = {"vocab": root / "vocab.json", "tokens": root / "train.h5", "features": root / "features.h5"}

    words = ["<PAD>", "<S>", "</S>", "<UNK>"] + [f"w{i}" for i in range(4, vocab_size)]
    paths["vocab"].write_text(json.dumps({"words": words, "min_count": 1, "source": "synthetic"}))

    image_ids = np.arange(100, 100 + dialogs, dtype=np.int64)  # [D]
    nq, na = 3 * dialogs, 6 * dialogs
    with h5py.File(paths["tokens"], "w") as f:
        f.attrs.update(version="v1.0", split="train", vocab_size=vocab_size, max_question_len=Q_LEN,
                       max_answer_len=Q_LEN, max_caption_len=CAP_LEN, num_options=O)
        q_tok, q_len = _token_rows(rng, nq, Q_LEN, 3, 8, vocab_size)
        a_tok, a_len = _token_rows(rng, na, Q_LEN, 1, 5, vocab_size)
        c_tok, c_len = _token_rows(rng, dialogs, CAP_LEN, 5, 12, vocab_size)
        answer = rng.integers(0, na, size=(dialogs, R)).astype(np.int32)  # [D, R]
        options = rng.integers(0, na, size=(dialogs, R, O)).astype(np.int32)  # [D, R, O]
        gt_index = rng.integers(0, O, size=(dialogs, R)).astype(np.int16)  # [D, R]
        np.put_along_axis(options, gt_index[..., None].astype(np.int64), answer[..., None], axis=-1)
        f["question_tokens"], f["question_len"] = q_tok, q_len
        f["answer_tokens"], f["answer_len"] = a_tok, a_len
        f["caption_tokens"], f["caption_len"] = c_tok, c_len
        f["image_id"] = image_ids
        f["num_rounds"] = np.full(dialogs, R, np.int32)
        f["question"] = rng.integers(0, nq, size=(dialogs, R)).astype(np.int32)
        f["answer"], f["answer_options"], f["gt_index"] = answer, options, gt_index

    with h5py.File(paths["features"], "w") as f:
        n = dialogs
        x1y1 = rng.uniform(0, 80, size=(n, boxes, 2))
        wh = rng.uniform(5, 60, size=(n, boxes, 2))
        f["image_id"] = image_ids[::-1].copy()  # feature order differs from dialog order
        f["image_w"] = np.full(n, 160, np.int32)
        f["image_h"] = np.full(n, 120, np.int32)
        f["num_boxes"] = np.full(n, boxes, np.int32)
        f["boxes"] = np.concatenate([x1y1, x1y1 + wh], -1).astype(np.float32)  # [N, K, 4]
        f.create_dataset("features", data=rng.random((n, boxes, FEAT_DIM), dtype=np.float32),
                         chunks=(1, boxes, FEAT_DIM))  # [N, K, 2048]
        f["cls_indices"] = rng.integers(0, 1600, size=(n, boxes)).astype(np.int32)
        f["cls_scores"] = rng.random((n, boxes), dtype=np.float32)
        f["top_attrs"] = rng.integers(0, 400, size=(n, boxes, 2)).astype(np.int32)
        f["top_attrs_scores"] = rng.random((n, boxes, 2), dtype=np.float32)
    return paths


def test_tiny_dataset_loads_as_batches(tmp_path):
    import torch

    from visdial_lg.data.dataset import VisDialDataset, collate

    paths = write_tiny_dataset(tmp_path, dialogs=3, boxes=5)
    dataset = VisDialDataset(paths["tokens"], paths["features"])
    batch = collate([dataset[i] for i in range(len(dataset))])
    assert batch["img_feat"].shape == (3, 5, FEAT_DIM)
    assert batch["opts"].shape == (3, R, O, Q_LEN)
    answers = torch.gather(batch["opts"], 2, batch["gt_index"][:, :, None, None].expand(-1, -1, 1, Q_LEN))
    assert torch.equal(answers[:, :, 0], batch["ans"].masked_fill(torch.arange(Q_LEN) >= 18, 0))
