"""Answers of the synthetic demo: meanings, their wordings, and the 100 options.

A *meaning* is what an answer says, e.g. ("colour", "red") or ("count", 2). Each
meaning has four wordings. The ground-truth answer is the first (canonical)
wording with probability `CANONICAL_PROB` and another one otherwise, as
annotators word answers differently; the meaning's other wordings are
near-paraphrases that the dense annotations score `PARAPHRASE_RELEVANCE`.
The answer inventory is every wording of every meaning plus a few
uninformative answers (as VisDial has "i can not tell"); a round's 100 options
are the GT, its paraphrases and distractors drawn from the rest of the inventory.
"""

from __future__ import annotations

import functools

import numpy as np

from .scenes import COLOURS, MAX_OBJECTS, POSITIONS, SHAPES, SIZES

NUM_OPTIONS = 100
GT_RELEVANCE = 1.0
PARAPHRASE_RELEVANCE = 0.5
CANONICAL_PROB = 0.6

Meaning = tuple  # (kind, value): kind in colour, shape, size, position, count, yesno

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")
UNINFORMATIVE = ("i can not tell", "not sure", "hard to say", "i do not know")


def wordings(meaning: Meaning) -> tuple[str, ...]:
    """All wordings of `meaning`, ground-truth form first."""
    kind, value = meaning
    if kind == "colour":
        return (value, f"it is {value}", f"{value} i think", f"looks {value}")
    if kind == "shape":
        return (f"a {value}", f"it is a {value}", f"looks like a {value}", value)
    if kind == "size":
        other = {"big": "large", "small": "tiny"}[value]
        return (value, f"it is {value}", other, f"pretty {value}")
    if kind == "position":
        places = {
            "left": ("on the left", "it is on the left", "left side", "to the left"),
            "middle": ("in the middle", "it is in the middle", "middle", "in the center"),
            "right": ("on the right", "it is on the right", "right side", "to the right"),
        }
        return places[value]
    if kind == "count":
        word = NUMBER_WORDS[value]
        there = {0: "there are none", 1: "there is one"}.get(value, f"there are {word}")
        return (word, str(value), there, f"i count {value}")
    if kind == "yesno":
        if value:
            return ("yes", "yes there is", "yes i see one", "i think so")
        return ("no", "no there is not", "i do not see one", "i do not think so")
    raise ValueError(f"unknown answer kind {kind!r}")


def all_meanings() -> list[Meaning]:
    return (
        [("colour", c) for c in COLOURS]
        + [("shape", s) for s in SHAPES]
        + [("size", s) for s in SIZES]
        + [("position", p) for p in POSITIONS]
        + [("count", n) for n in range(MAX_OBJECTS + 1)]
        + [("yesno", True), ("yesno", False)]
    )


def answer_inventory() -> list[str]:
    """Every answer string the demo can use, in a fixed order."""
    return [text for meaning in all_meanings() for text in wordings(meaning)] + list(UNINFORMATIVE)


_INVENTORY = answer_inventory()
_MEANING_OF = {text: meaning for meaning in all_meanings() for text in wordings(meaning)}
if len(set(_INVENTORY)) != len(_INVENTORY):  # a wording shared by two meanings would make relevance ambiguous
    raise AssertionError("demo answer wordings must be distinct")


def meaning_of(text: str) -> Meaning | None:
    """The meaning an answer string expresses; None for the uninformative answers."""
    return _MEANING_OF.get(text)


@functools.lru_cache(maxsize=None)
def _distractor_pool(meaning: Meaning) -> tuple[str, ...]:
    """The inventory without the wordings of `meaning`."""
    own = set(wordings(meaning))
    return tuple(a for a in _INVENTORY if a not in own)


def make_options(rng: np.random.Generator, meaning: Meaning) -> tuple[list[str], int, list[float]]:
    """100 distinct options for a round answered by `meaning`.

    Returns (options, gt_index, relevance): the GT wording at `gt_index` with
    relevance 1, the meaning's other wordings with `PARAPHRASE_RELEVANCE`,
    distractors from the rest of the inventory with 0.
    """
    own = wordings(meaning)
    gt = own[0] if rng.random() < CANONICAL_PROB else own[1 + rng.integers(len(own) - 1)]
    pool = _distractor_pool(meaning)
    picked = rng.choice(len(pool), NUM_OPTIONS - len(own), replace=False)
    candidates = [*own, *(pool[i] for i in picked)]
    options = [candidates[i] for i in rng.permutation(NUM_OPTIONS)]
    relevance = [
        GT_RELEVANCE if o == gt else PARAPHRASE_RELEVANCE if o in own else 0.0
        for o in options
    ]
    return options, options.index(gt), relevance
