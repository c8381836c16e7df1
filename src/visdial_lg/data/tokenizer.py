"""Word tokenization as LTMI does it (NLTK `word_tokenize`), without NLTK data files.

`word_tokenize` = Punkt sentence splitting (needs the downloaded `punkt` model)
followed by `NLTKWordTokenizer` on each sentence. Here:

* sentences are split by a small rule that stands in for Punkt (`_ends_sentence`);
* each sentence gets exactly `NLTKWordTokenizer`'s tokens, computed word by word:
  its regexes only look at a word and its neighbouring whitespace (plus the start
  and end of the sentence), so a word's tokens depend only on the word and on
  whether it is first / last. Plain alphanumeric words are their own token; every
  other (word, position) is run through NLTK once and cached. This is ~40x faster
  than calling NLTK per string; `tests/test_tokens.py` checks it against NLTK.

See docs/text.md for the differences from `word_tokenize`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from multiprocessing import get_context
from typing import Iterable, Sequence

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


def tokenize_many(
    strings: Sequence[str], workers: int = 1, desc: str = "tokenize", chunk_size: int = 20_000
) -> list[list[str]]:
    """Tokenize every string (in order) with `workers` processes, with a progress bar."""
    chunks = [strings[i : i + chunk_size] for i in range(0, len(strings), chunk_size)]
    bar = tqdm(total=len(strings), desc=desc, unit="str", disable=None)
    out: list[list[str]] = []
    workers = max(1, min(workers, len(chunks), os.cpu_count() or 1))
    if workers == 1:
        results: Iterable[list[list[str]]] = map(_tokenize_chunk, chunks)
        pool = None
    else:
        # fork: workers inherit the imported tokenizer; the cache fills per worker
        pool = get_context("fork").Pool(workers)
        results = pool.imap(_tokenize_chunk, chunks)
    try:
        for part in results:
            out.extend(part)
            bar.update(len(part))
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    return out
