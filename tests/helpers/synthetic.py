"""Synthetic train inputs in the exact layouts of docs/formats.md, of any size:
random tokens and features, real shapes. For the training tests (tiny) and
`bench/train.py` (real shapes: vocabulary 11,322, K = 100 boxes, 100 options)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

R, O, Q_LEN, CAP_LEN, FEAT_DIM = 10, 100, 20, 40, 2048
_FEATURE_BLOCK = 64  # images generated and written at a time (bounded memory)


def _token_rows(rng, n, width, lo, hi, vocab):
    lens = rng.integers(lo, hi + 1, size=n).astype(np.int32)  # [n]
    tokens = rng.integers(4, vocab, size=(n, width)).astype(np.int32)  # [n, width]
    tokens[np.arange(width)[None, :] >= lens[:, None]] = 0
    return tokens, lens


def write_vocabulary(path: Path, vocab_size: int) -> None:
    words = ["<PAD>", "<S>", "</S>", "<UNK>"] + [f"w{i}" for i in range(4, vocab_size)]
    path.write_text(json.dumps({"words": words, "min_count": 1, "source": "synthetic"}))


def write_tokens(path: Path, dialogs: int, image_ids: np.ndarray, vocab_size: int,
                 questions: int, answers: int, rng: np.random.Generator) -> None:
    """Pools of `questions`/`answers` rows and per-dialog indices; the GT answer is among the options."""
    with h5py.File(path, "w") as f:
        f.attrs.update(version="v1.0", split="train", vocab_size=vocab_size, max_question_len=Q_LEN,
                       max_answer_len=Q_LEN, max_caption_len=CAP_LEN, num_options=O)
        f["question_tokens"], f["question_len"] = _token_rows(rng, questions, Q_LEN, 3, 12, vocab_size)
        f["answer_tokens"], f["answer_len"] = _token_rows(rng, answers, Q_LEN, 1, 8, vocab_size)
        f["caption_tokens"], f["caption_len"] = _token_rows(rng, dialogs, CAP_LEN, 6, 16, vocab_size)
        answer = rng.integers(0, answers, size=(dialogs, R)).astype(np.int32)  # [D, R]
        options = rng.integers(0, answers, size=(dialogs, R, O)).astype(np.int32)  # [D, R, O]
        gt_index = rng.integers(0, O, size=(dialogs, R)).astype(np.int16)  # [D, R]
        np.put_along_axis(options, gt_index[..., None].astype(np.int64), answer[..., None], axis=-1)
        f["image_id"] = image_ids
        f["num_rounds"] = np.full(dialogs, R, np.int32)
        f["question"] = rng.integers(0, questions, size=(dialogs, R)).astype(np.int32)
        f["answer"], f["gt_index"] = answer, gt_index
        f.create_dataset("answer_options", data=options, chunks=(1, R, O))


def write_features(path: Path, image_ids: np.ndarray, boxes: int, rng: np.random.Generator) -> None:
    """One row per image, chunked one image per chunk (as extraction writes them)."""
    n = len(image_ids)
    with h5py.File(path, "w") as f:
        f["image_id"] = image_ids[::-1].copy()  # feature order differs from dialog order
        f["image_w"] = np.full(n, 640, np.int32)
        f["image_h"] = np.full(n, 480, np.int32)
        f["num_boxes"] = np.full(n, boxes, np.int32)
        x1y1 = rng.uniform(0, [400, 240], size=(n, boxes, 2))  # boxes inside the 640x480 image
        wh = rng.uniform(10, 240, size=(n, boxes, 2))
        f["boxes"] = np.concatenate([x1y1, x1y1 + wh], -1).astype(np.float32)  # [N, K, 4]
        feats = f.create_dataset("features", shape=(n, boxes, FEAT_DIM), dtype=np.float32,
                                 chunks=(1, boxes, FEAT_DIM))  # [N, K, 2048]
        for start in range(0, n, _FEATURE_BLOCK):
            stop = min(start + _FEATURE_BLOCK, n)
            feats[start:stop] = rng.random((stop - start, boxes, FEAT_DIM), dtype=np.float32)
        f["cls_indices"] = rng.integers(0, 1600, size=(n, boxes)).astype(np.int32)
        f["cls_scores"] = rng.random((n, boxes), dtype=np.float32)
        f["top_attrs"] = rng.integers(0, 400, size=(n, boxes, 2)).astype(np.int32)
        f["top_attrs_scores"] = rng.random((n, boxes, 2), dtype=np.float32)


def write_synthetic_inputs(root: Path, dialogs: int, vocab_size: int, boxes: int,
                           questions: int | None = None, answers: int | None = None,
                           seed: int = 0) -> dict[str, Path]:
    """vocab.json, train.h5 (tokens) and features.h5 (one image per dialog) under `root`."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = {"vocab": root / "vocab.json", "tokens": root / "train.h5", "features": root / "features.h5"}
    image_ids = np.arange(100, 100 + dialogs, dtype=np.int64)  # [D]
    write_vocabulary(paths["vocab"], vocab_size)
    write_tokens(paths["tokens"], dialogs, image_ids, vocab_size,
                 questions or 3 * dialogs, answers or 6 * dialogs, rng)
    write_features(paths["features"], image_ids, boxes, rng)
    return paths
