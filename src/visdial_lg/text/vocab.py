"""The word vocabulary (LTMI, docs/upstream.md#ltmi-release-data) and its optional GloVe initialisation.

Words come from the train split's captions, questions (with "?" appended) and
ground-truth answers, counted per occurrence in the dialogs (as VisDial's word-count
file is); words with count >= min_count are kept, most frequent first (ties
alphabetical), after `<PAD> <S> </S> <UNK>` at 0-3. Layout: docs/formats.md "Vocabulary".
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm import tqdm

from ..core.errors import InputFormatError
from ..core.files import read_json, write_text_atomic
from .tokenizer import UNK_ID, count_tokens
from .visdial import VisDialSplit, load_visdial

GLOVE_DIM = 300
GLOVE_SEED = 0  # LTMI's seed; fixes the random rows of words GloVe lacks


class Vocabulary:
    PAD, SOS, EOS, UNK = 0, 1, 2, UNK_ID
    SPECIALS = ("<PAD>", "<S>", "</S>", "<UNK>")

    def __init__(self, words: Sequence[str]):
        if tuple(words[:4]) != self.SPECIALS:
            raise InputFormatError(f"a vocabulary must start with {' '.join(self.SPECIALS)}")
        self._words = list(words)
        self._index = {w: i for i, w in enumerate(self._words)}
        if len(self._index) != len(self._words):
            raise InputFormatError("vocabulary words are not unique")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        data = read_json(path, "vocabulary")
        if not isinstance(data, dict) or not isinstance(data.get("words"), list):
            raise InputFormatError(f'{path}: a vocabulary file holds {{"words": [...]}}')
        try:
            return cls(data["words"])
        except InputFormatError as e:
            raise InputFormatError(f"{path}: {e}") from e

    def save(self, path: str | Path, min_count: int, source: str) -> None:
        write_text_atomic(path, json.dumps({"words": self._words, "min_count": min_count, "source": source},
                                           ensure_ascii=False))

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: str) -> bool:
        return word in self._index

    @property
    def words(self) -> list[str]:
        return self._words

    def index(self, word: str) -> int:
        """The word's id; `<UNK>` for words not in the vocabulary."""
        return self._index.get(word, self.UNK)

    def to_ids(self, tokens: Iterable[str]) -> list[int]:
        get = self._index.get
        return [get(t, self.UNK) for t in tokens]

    def to_words(self, ids: Iterable[int]) -> list[str]:
        return [self._words[int(i)] for i in ids]

    def sentence(self, ids: list[int]) -> str:
        """The words of a generated answer or history entry as text, its closing </S> dropped."""
        return " ".join(self.to_words(ids[:-1] if ids and ids[-1] == self.EOS else ids))


def count_words(split: VisDialSplit, workers: int = 1) -> Counter:
    """Word counts over captions, questions (+ "?") and GT answers, one count per occurrence."""
    d = split.dialogs
    q_uses = np.bincount(d.question[d.question >= 0], minlength=len(split.questions))  # [Nq]
    a_uses = np.bincount(d.answer[d.answer >= 0], minlength=len(split.answers))  # [Na]
    used_q = np.flatnonzero(q_uses)
    used_a = np.flatnonzero(a_uses)
    strings = [split.questions[i] + "?" for i in used_q] + [split.answers[i] for i in used_a] + d.caption
    weights = np.concatenate([q_uses[used_q], a_uses[used_a], np.ones(len(d.caption), np.int64)]).tolist()
    return count_tokens(strings, weights, workers)


def build_vocabulary(split: VisDialSplit, min_count: int, workers: int = 1) -> Vocabulary:
    counts = count_words(split, workers)
    kept = sorted((w for w, c in counts.items() if c >= min_count and w not in Vocabulary.SPECIALS),
                  key=lambda w: (-counts[w], w))
    return Vocabulary(list(Vocabulary.SPECIALS) + kept)


def read_glove(path: str | Path, vocab: Vocabulary, dim: int = GLOVE_DIM) -> dict[int, np.ndarray]:
    """GloVe text vectors of vocabulary words: id -> [dim] float32 (first occurrence wins).

    A line is `word v1 .. v_dim`; GloVe 840B has words containing spaces, so the
    vector is the last `dim` fields (such words are never vocabulary tokens)."""
    found: dict[int, np.ndarray] = {}
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError as e:
        raise InputFormatError(f"{path}: GloVe file not found") from e
    with f:
        for lineno, line in enumerate(tqdm(f, desc="read GloVe", unit="line"), 1):
            head = line[: line.find(" ")]
            if head not in vocab:
                continue
            parts = line.rstrip("\r\n").rsplit(" ", dim)
            if len(parts) != dim + 1:
                raise InputFormatError(f"{path}: line {lineno}: expected a word and {dim} numbers")
            if parts[0] != head:  # a word with spaces whose first part is a vocabulary word
                continue
            idx = vocab.index(head)
            if idx in found:
                continue
            try:
                found[idx] = np.array(parts[1:], dtype=np.float32)  # [dim]
            except ValueError as e:
                raise InputFormatError(f"{path}: line {lineno}: {e}") from e
    return found


def glove_embedding(path: str | Path, vocab: Vocabulary, dim: int = GLOVE_DIM, seed: int = GLOVE_SEED):
    """`FloatTensor[V, dim]`: GloVe rows where found, N(0, std 1/sqrt(dim)) elsewhere (LTMI)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(len(vocab), dim, generator=gen) / dim**0.5  # [V, dim]
    found = read_glove(path, vocab, dim)
    if found:
        ids = sorted(found)
        weight[ids] = torch.from_numpy(np.stack([found[i] for i in ids]))
    print(f"glove: {len(found):,} of {len(vocab):,} vocabulary words found in {path}", file=sys.stderr)
    return weight


def save_glove_embedding(glove_path, vocab: Vocabulary, out) -> None:
    """Write `{"weight": FloatTensor[V, 300]}` (GloVe-initialised) to `out`, atomically."""
    import torch

    weight = glove_embedding(glove_path, vocab)
    tmp = f"{out}.tmp"
    torch.save({"weight": weight}, tmp)
    os.replace(tmp, out)


def build_vocabulary_file(train_json, out, text_cfg, glove_path=None, glove_out=None, version: str = "v1.0") -> Vocabulary:
    """Vocabulary JSON from a train split (+ the GloVe `.pt` when `glove_path` is given)."""
    if bool(glove_path) != bool(glove_out):
        raise InputFormatError("vocab: --glove and --glove-out go together")
    split = load_visdial(train_json, version, "train")
    vocab = build_vocabulary(split, text_cfg.min_count, text_cfg.workers)
    if glove_path:
        save_glove_embedding(glove_path, vocab, glove_out)
    vocab.save(out, text_cfg.min_count, str(train_json))
    return vocab
