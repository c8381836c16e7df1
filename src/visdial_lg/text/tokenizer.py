"""Word tokenization as LTMI does it (NLTK `word_tokenize`), without NLTK data files.

`word_tokenize` = Punkt sentence splitting (needs the downloaded `punkt` model)
followed by `NLTKWordTokenizer` on each sentence. Here:

* sentences are split by a small rule that stands in for Punkt (`_ends_sentence`);
* each sentence gets exactly `NLTKWordTokenizer`'s tokens, computed word by word:
  its regexes only look at a word and its neighbouring whitespace (plus the start
  and end of the sentence), so a word's tokens depend only on the word and on
  whether it is first / last. Plain alphanumeric words are their own token; every
  other (word, position) is run through NLTK once and cached. This is ~40x faster
  than calling NLTK per string; `tests/text/test_tokens.py` checks it against NLTK.

See docs/text.md for the differences from `word_tokenize`.
"""

from __future__ import annotations

import gc
import os
from collections import Counter
from functools import lru_cache
from itertools import chain
from multiprocessing import get_context
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from nltk.tokenize.destructive import NLTKWordTokenizer
from tqdm import tqdm

_NLTK = NLTKWordTokenizer()

# Alphanumeric words that NLTK's MacIntyre contractions split ("cannot" -> "can not").
_SPLIT_ALNUM_WORDS = frozenset({"cannot", "gimme", "gonna", "gotta", "lemme", "wanna"})
# A sentence whose last word is only closing quotes/brackets lets NLTK's final-period
# rule reach back into the previous word: such sentences go to NLTK whole.
_CLOSERS = frozenset("]})>\"'»”’")
# Stand-in for Punkt's abbreviation list: a final "." after these is not a sentence end
# ("no." is left out on purpose: in VisDial it is the answer "no", as in "no. it's sunny").
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc inc ltd co corp mt ft approx dept fig".split()
)
UNK_ID = 3  # Vocabulary.UNK (vocab.py imports this module)
_CONTEXT = "x"  # a neutral neighbour word: gives a word the whitespace context it has mid-sentence


def _ends_sentence(word: str) -> bool:
    """Whether Punkt would end a sentence after `word` (when more text follows)."""
    last = word[-1]
    if last in "?!":
        return True
    if last != ".":
        return False
    stem = word[:-1]
    if not stem or stem.endswith("."):  # "." alone is NLTK's; ".." / "..." is an ellipsis
        return False
    if len(stem) == 1 and stem.isalpha():  # an initial: "j. smith"
        return False
    if "." in stem or stem.replace(",", "").isdigit():  # "u.s.", "3.5.", "2." (numbers)
        return False
    return stem.lower() not in _ABBREVIATIONS


@lru_cache(maxsize=None)
def _word_tokens(word: str, first: bool, last: bool) -> tuple[str, ...]:
    text = ("" if first else _CONTEXT + " ") + word + ("" if last else " " + _CONTEXT)
    tokens = _NLTK.tokenize(text)
    return tuple(tokens[(0 if first else 1) : (len(tokens) if last else -1)])


def _tokenize_sentence(words: Sequence[str], out: list[str]) -> None:
    if not words:
        return
    if all(c in _CLOSERS for c in words[-1]):
        out.extend(_NLTK.tokenize(" ".join(words)))
        return
    final = len(words) - 1
    for i, word in enumerate(words):
        if word.isascii() and word.isalnum() and word.lower() not in _SPLIT_ALNUM_WORDS:
            out.append(word)
        else:
            out.extend(_word_tokens(word, i == 0, i == final))


def tokenize(text: str) -> list[str]:
    """Tokens of `text` as NLTK `word_tokenize` gives them (no lower-casing, as LTMI)."""
    words = text.split()
    out: list[str] = []
    start = 0
    for i in range(len(words) - 1):
        if _ends_sentence(words[i]):
            _tokenize_sentence(words[start : i + 1], out)
            start = i + 1
    _tokenize_sentence(words[start:], out)
    return out


def _tokenize_chunk(strings: Sequence[str]) -> list[list[str]]:
    return [tokenize(s) for s in strings]


def _count_chunk(pairs: Sequence[tuple[str, int]]) -> Counter:
    counts: Counter = Counter()
    for text, weight in pairs:
        for token in tokenize(text):
            counts[token] += weight
    return counts


_WORD_INDEX: dict[str, int] = {}  # the vocabulary of `_ids_chunk`, set in each worker


def _set_word_index(words: Sequence[str]) -> None:
    global _WORD_INDEX
    _WORD_INDEX = {w: i for i, w in enumerate(words)}


def _ids_chunk(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    get, unk = _WORD_INDEX.get, UNK_ID
    ids = [[get(t, unk) for t in tokenize(s)] for s in strings]
    lengths = np.fromiter(map(len, ids), np.int32, count=len(ids))  # [n]
    return np.fromiter(chain.from_iterable(ids), np.int32, count=int(lengths.sum())), lengths


def map_chunks(fn: Callable, items: Sequence, workers: int, desc: str, chunk_size: int = 20_000,
               initializer: Callable | None = None, initargs: tuple = ()) -> Iterator:
    """`fn(chunk)` for consecutive chunks of `items`, in order, over `workers` processes."""
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    workers = max(1, min(workers, len(chunks), os.cpu_count() or 1))
    pool = None
    if workers == 1:
        if initializer is not None:
            initializer(*initargs)
        results: Iterable = map(fn, chunks)
    else:
        # fork: workers inherit the imported tokenizer; the cache fills per worker. Freezing
        # the GC keeps the workers from touching (and so copying) the parent's objects.
        gc.freeze()
        pool = get_context("fork").Pool(workers, initializer, initargs)
        gc.unfreeze()
        results = pool.imap(fn, chunks)
    with tqdm(total=len(items), desc=desc, unit="str") as bar:
        try:
            for chunk, result in zip(chunks, results):
                bar.update(len(chunk))
                yield result
        finally:
            if pool is not None:
                if bar.n < len(items):  # stopped early (error, Ctrl-C): do not wait for the rest
                    pool.terminate()
                else:
                    pool.close()
                pool.join()


def tokenize_many(strings: Sequence[str], workers: int = 1, chunk_size: int = 20_000) -> list[list[str]]:
    """The tokens of every string, in order."""
    return list(chain.from_iterable(map_chunks(_tokenize_chunk, strings, workers, "tokenize", chunk_size)))


def count_tokens(strings: Sequence[str], weights: Sequence[int], workers: int = 1, chunk_size: int = 20_000
                 ) -> Counter:
    """Sum over strings of weight x (count of each token in the string)."""
    total: Counter = Counter()
    for counts in map_chunks(_count_chunk, list(zip(strings, weights)), workers, "count words", chunk_size):
        total.update(counts)
    return total


def token_ids(strings: Sequence[str], words: Sequence[str], workers: int = 1, chunk_size: int = 20_000
              ) -> tuple[np.ndarray, np.ndarray]:
    """Ids of every string's tokens in the vocabulary `words` (unknown -> 3):
    (flat ids [sum(lengths)] int32, lengths [N] int32)."""
    parts = list(map_chunks(_ids_chunk, strings, workers, "tokenize", chunk_size, initializer=_set_word_index,
                            initargs=(list(words),)))
    if not parts:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
