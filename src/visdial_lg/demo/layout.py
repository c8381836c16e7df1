"""The demo's dialogs in the VisDial JSON layouts, plus its dense, answer and grounding files.

Works on `DemoImage`s (one generated image with its scene, dialog and options)
and returns plain JSON-ready objects; `demo.py` decides which images go where
and writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass

from .dialogs import Dialog
from .scenes import Scene


@dataclass(frozen=True)
class DemoImage:
    image_set: str  # train2014 | val2014 | val2018 | test2018
    index: int  # position within the image set
    image_id: int
    file_name: str
    scene: Scene
    dialog: Dialog
    options: tuple  # per round: (options [100 str], gt_index, relevance [100 float])
    num_rounds: int  # 10, or 1..10 on test2018
    dense_round: int  # 1-based round whose relevance a dense file may publish

    def answer(self, r: int) -> str:
        options, gt_index, _ = self.options[r]
        return options[gt_index]


def _rounds(image: DemoImage, test: bool) -> list[dict]:
    """Round dicts holding strings; test rounds follow the VisDial test layout."""
    rounds = []
    for r in range(image.num_rounds):
        question = image.dialog.rounds[r].question
        options, gt_index, _ = image.options[r]
        if not test:
            rounds.append({"question": question, "answer": image.answer(r), "answer_options": options, "gt_index": gt_index})
        elif r < image.num_rounds - 1:
            rounds.append({"question": question, "answer": image.answer(r)})
        else:  # the round to answer: options only, the answer is held back
            rounds.append({"question": question, "answer_options": options})
    return rounds


def visdial_json(version: str, split: str, images: list[DemoImage]) -> dict:
    """One VisDial JSON file: questions and answers pooled (sorted), rounds index into the pools."""
    test = split == "test"
    dialogs = [(im, _rounds(im, test)) for im in images]
    questions = sorted({r["question"] for _, rounds in dialogs for r in rounds})
    answers = sorted({a for _, rounds in dialogs for r in rounds
                      for a in ([r["answer"]] if "answer" in r else []) + r.get("answer_options", [])})
    q_index = {q: i for i, q in enumerate(questions)}
    a_index = {a: i for i, a in enumerate(answers)}

    def encode(r: dict) -> dict:
        out = {"question": q_index[r["question"]]}
        if "answer" in r:
            out["answer"] = a_index[r["answer"]]
        if "answer_options" in r:
            out["answer_options"] = [a_index[a] for a in r["answer_options"]]
        if "gt_index" in r:
            out["gt_index"] = r["gt_index"]
        return out

    return {
        "version": version,
        "split": split,
        "data": {
            "questions": questions,
            "answers": answers,
            "dialogs": [{"image_id": im.image_id, "caption": im.dialog.caption, "dialog": [encode(r) for r in rounds]}
                        for im, rounds in dialogs],
        },
    }


def dense_annotations(images: list[DemoImage], key: str) -> list[dict]:
    """One annotated round per image: `key` is "gt_relevance" (val) or "relevance" (train sample)."""
    return [{"image_id": im.image_id, "round_id": im.dense_round, key: list(im.options[im.dense_round - 1][2])}
            for im in images]


def held_back_answers(images: list[DemoImage]) -> list[dict]:
    """The held-back answers of the test split's last rounds, as the evaluation server keeps them."""
    out = []
    for im in images:
        _, gt_index, relevance = im.options[im.num_rounds - 1]
        out.append({"image_id": im.image_id, "round_id": im.num_rounds, "gt_index": gt_index,
                    "gt_relevance": list(relevance)})
    return out


def grounding(images: list[DemoImage]) -> list[dict]:
    """Per round: boxes [x1, y1, x2, y2] and categories of the objects it refers to."""
    out = []
    for im in images:
        for r in range(im.num_rounds):
            referents = im.dialog.rounds[r].referents
            out.append({
                "image_id": im.image_id,
                "round_id": r + 1,
                "boxes": [list(im.scene.objects[i].box) for i in referents],
                "categories": [im.scene.objects[i].shape for i in referents],
            })
    return out


def region_boxes(images: list[DemoImage], count: int, rng) -> dict[str, list]:
    """Per image, `count` regions to extract features for (the demo's stand-in for a
    trained detector's proposals, docs/demo.md): every object's box, then distractors
    (shifted and rescaled copies of object boxes, and free boxes), in shuffled order.

    rng: a random.Random; returns {str(image_id): [[x1, y1, x2, y2], ...]}."""
    out = {}
    for im in images:
        w, h = im.scene.width, im.scene.height
        boxes = [list(o.box) for o in im.scene.objects]
        while len(boxes) < count:
            if boxes and rng.random() < 0.5:  # a part or a loose fit of an object
                x1, y1, x2, y2 = rng.choice(boxes[: len(im.scene.objects)])
                bw, bh = (x2 - x1) * rng.uniform(0.5, 1.6), (y2 - y1) * rng.uniform(0.5, 1.6)
                cx, cy = (x1 + x2) / 2 + rng.uniform(-0.4, 0.4) * bw, (y1 + y2) / 2 + rng.uniform(-0.4, 0.4) * bh
            else:  # anywhere: background, or several objects at once
                bw, bh = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
                cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            box = [max(0.0, cx - bw / 2), max(0.0, cy - bh / 2), min(w - 1.0, cx + bw / 2), min(h - 1.0, cy + bh / 2)]
            if box[2] - box[0] >= 4 and box[3] - box[1] >= 4:
                boxes.append([round(v, 2) for v in box])
        rng.shuffle(boxes)
        out[str(im.image_id)] = boxes
    return out
