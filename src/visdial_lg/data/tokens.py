"""Tokenize one VisDial split into the tokens HDF5 (docs/formats.md "Tokens HDF5").

Every unique string (question + "?", answer, caption) is tokenized once; dialogs
keep indices into the question / answer pools, so the 100 options per round are
stored as indices, never as 100x expanded tokens. The batch construction (history,
`<S>`/`</S>`, LTMI's 18/20 truncations) is the dataset's job (data/dataset.py).
"""

from __future__ import annotations

import os
from itertools import chain
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from .tokenizer import tokenize_many
from .visdial import NUM_OPTIONS, load_dense, load_visdial
from .vocab import Vocabulary


def encode(rows: Sequence[Sequence[int]], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Id lists -> (ids [N, max_len] int32 truncated and 0-padded, lengths [N] int32)."""
    lengths = np.fromiter((min(len(r), max_len) for r in rows), np.int32, count=len(rows))  # [N]
    flat = np.fromiter(chain.from_iterable(r[:max_len] for r in rows), np.int32, count=int(lengths.sum()))
    ids = np.zeros((len(rows), max_len), np.int32)  # [N, max_len]
    ids[np.arange(max_len) < lengths[:, None]] = flat  # row-major order matches `flat`
    return ids, lengths


def tokenize_strings(pools: Sequence[Sequence[str]], vocab: Vocabulary, workers: int) -> list[list[list[int]]]:
    """Ids of every string in each pool; each distinct string is tokenized once."""
    unique = list(dict.fromkeys(chain.from_iterable(pools)))
    ids_of = dict(zip(unique, (vocab.to_ids(t) for t in tokenize_many(unique, workers))))
    return [[ids_of[s] for s in pool] for pool in pools]


def tokenize_split(json_path, vocab_path, out, text_cfg, version: str, split: str, dense_path=None) -> None:
    """Write `out` (HDF5) for one split; written as `out.tmp`, renamed when complete."""
    data = load_visdial(json_path, version, split)
    dense = load_dense(dense_path, data) if dense_path else None
    vocab = Vocabulary.load(vocab_path)
    d = data.dialogs
    questions, answers, captions = tokenize_strings(
        [[q + "?" for q in data.questions], data.answers, d.caption], vocab, text_cfg.workers  # LTMI adds "?"
    )
    question_tokens, question_len = encode(questions, text_cfg.max_question_len)
    answer_tokens, answer_len = encode(answers, text_cfg.max_answer_len)
    caption_tokens, caption_len = encode(captions, text_cfg.max_caption_len)

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
