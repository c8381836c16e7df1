"""Tiny VisDial JSON fixtures for the reader / vocabulary / tokens tests (docs/formats.md layout)."""

from __future__ import annotations

import json
import random
from pathlib import Path

QUESTIONS = [
    "is it a man's hat",
    "what color is the dog",
    "how many people are there",
    "is it sunny",
    "can you see the sky",
    "are there any trees",
    "what is he wearing",
    "is the photo in color",
    "does the cat look happy",
    "where is the car",
    "is it daytime",
    "any other animals",
]
ANSWERS = ["yes", "no", "i can't tell", "2", "white and brown", "no, it's cloudy", "a t-shirt"] + [
    f"option {i} words" for i in range(113)
]
CAPTIONS = ["a man riding a wave on top of a surfboard", "a dog sitting on a couch", "two cats sleeping"]


def make_visdial(num_dialogs: int = 3, split: str = "train", version: str = "1.0", seed: int = 0,
                 questions=QUESTIONS, answers=ANSWERS, captions=CAPTIONS, first_image_id: int = 100) -> dict:
    """A valid VisDial dict: 10 full rounds (train/val) or 1..10 rounds with options on the last (test)."""
    rng = random.Random(seed)
    dialogs = []
    for i in range(num_dialogs):
        num_rounds = 10 if split != "test" else (i % 10) + 1
        rounds = []
        for r in range(num_rounds):
            q = (i * 10 + r) % len(questions)
            a = rng.randrange(len(answers))
            if split == "test" and r < num_rounds - 1:
                rounds.append({"question": q, "answer": a})
                continue
            options = rng.sample([k for k in range(len(answers)) if k != a], 99)
            gt = rng.randrange(100)
            options.insert(gt, a)
            if split == "test":
                rounds.append({"question": q, "answer_options": options})
            else:
                rounds.append({"question": q, "answer": a, "answer_options": options, "gt_index": gt})
        dialogs.append({"image_id": first_image_id + i, "caption": captions[i % len(captions)], "dialog": rounds})
    return {"version": version, "split": split,
            "data": {"questions": list(questions), "answers": list(answers), "dialogs": dialogs}}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def make_dense(data: dict, key: str = "gt_relevance", every: int = 1) -> list[dict]:
    """Dense annotations for every `every`-th dialog, round (i % 10) + 1."""
    out = []
    for i, d in enumerate(data["data"]["dialogs"][::every]):
        rel = [((k * 7 + i) % 5) / 4 for k in range(100)]
        out.append({"image_id": d["image_id"], "round_id": min(i % 10 + 1, len(d["dialog"])), key: rel})
    return out
