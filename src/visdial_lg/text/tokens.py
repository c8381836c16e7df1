"""Tokenize one VisDial split into the tokens HDF5 (docs/formats.md "Tokens HDF5").

Every unique string (question + "?", answer, caption) is tokenized once; dialogs
keep indices into the question / answer pools, so the 100 options per round are
stored as indices, never as 100x expanded tokens. The batch construction (history,
`<S>`/`</S>`, LTMI's 18/20 truncations) is the dataset's job (data/dataset.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from .tokenizer import token_ids
from .visdial import NUM_OPTIONS, load_dense, load_visdial
from .vocab import Vocabulary


class TokenPool:
    """The ids of distinct strings, concatenated: string k is flat[start[k] : start[k] + length[k]]."""

    def __init__(self, strings: Sequence[str], vocab: Vocabulary, workers: int):
        self.flat, self.length = token_ids(strings, vocab.words, workers)  # [T] int32, [S] int32
        self.start = np.concatenate([[0], np.cumsum(self.length, dtype=np.int64)[:-1]])  # [S]

    def padded(self, rows: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Strings `rows` as (ids [N, max_len] int32 truncated and 0-padded, lengths [N] int32)."""
        lengths = np.minimum(self.length[rows], max_len).astype(np.int32)  # [N]
        steps = np.arange(max_len)
        pos = self.start[rows][:, None] + steps  # [N, max_len]
        flat = np.append(self.flat, np.int32(0))  # a 0 to point past-the-end positions at
        ids = np.where(steps < lengths[:, None], flat[np.minimum(pos, len(self.flat))], 0)  # [N, max_len]
        return ids.astype(np.int32), lengths


def tokenize_pools(pools: Sequence[Sequence[str]], vocab: Vocabulary, workers: int
                   ) -> tuple[TokenPool, list[np.ndarray]]:
    """Each distinct string of all pools tokenized once: (TokenPool, per pool its rows [len(pool)])."""
    row_of: dict[str, int] = {}
    rows = [np.fromiter((row_of.setdefault(s, len(row_of)) for s in pool), np.int64, count=len(pool))
            for pool in pools]
    return TokenPool(list(row_of), vocab, workers), rows


def tokenize_split(json_path, vocab_path, out, text_cfg, version: str, split: str, dense_path=None) -> None:
    """Write `out` (HDF5) for one split; written as `out.tmp`, renamed when complete."""
    data = load_visdial(json_path, version, split)
    dense = load_dense(dense_path, data) if dense_path else None
    vocab = Vocabulary.load(vocab_path)
    d = data.dialogs
    pool, (questions, answers, captions) = tokenize_pools(
        [[q + "?" for q in data.questions], data.answers, d.caption], vocab, text_cfg.workers  # LTMI adds "?"
    )
    question_tokens, question_len = pool.padded(questions, text_cfg.max_question_len)
    answer_tokens, answer_len = pool.padded(answers, text_cfg.max_answer_len)
    caption_tokens, caption_len = pool.padded(captions, text_cfg.max_caption_len)

    tmp = f"{out}.tmp"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(tmp, "w") as f:
        f.attrs.update(
            version=version, split=split, vocab_size=len(vocab), num_options=NUM_OPTIONS,
            max_question_len=text_cfg.max_question_len, max_answer_len=text_cfg.max_answer_len,
            max_caption_len=text_cfg.max_caption_len,
        )
        columns = {
            "question_tokens": question_tokens, "question_len": question_len,
            "answer_tokens": answer_tokens, "answer_len": answer_len,
            "caption_tokens": caption_tokens, "caption_len": caption_len,
            "image_id": d.image_id, "num_rounds": d.num_rounds,
            "question": d.question, "answer": d.answer, "answer_options": d.answer_options,
            "gt_index": d.gt_index,
        }
        if dense is not None:
            columns.update(zip(("dense_round", "gt_relevance"), dense_columns(d.image_id, dense)))
        for name, arr in columns.items():
            f.create_dataset(name, data=arr, track_times=False)
    os.replace(tmp, out)


def dense_columns(image_id: np.ndarray, dense: dict) -> tuple[np.ndarray, np.ndarray]:
    """(dense_round [D] int16, 0 = none; gt_relevance [D, 100] float32, 0 where none)."""
    dense_round = np.zeros(len(image_id), np.int16)  # [D]
    relevance = np.zeros((len(image_id), NUM_OPTIONS), np.float32)  # [D, 100]
    for row, iid in enumerate(image_id.tolist()):
        if iid in dense:
            dense_round[row], relevance[row] = dense[iid]
    return dense_round, relevance
