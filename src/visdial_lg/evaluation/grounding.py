"""Grounding accuracy (paper Table 3): does a model's top-3 of regions hit an object
the round refers to?

The paper asked human annotators. We derive the annotations automatically where
objects are annotated: a round refers to the instances (COCO-format file, read
with pycocotools) of the categories its question or answer names
(`resources/category_words.yaml`); a user-supplied file of round boxes
(`annotations.load_round_boxes` format) may replace them. A round counts when at
least one region overlaps one of its objects (IoU >= 0.5), since otherwise the
detector never proposed the object; it is a hit when one of the top-3 regions
does. "Random" is the exact expected accuracy of 3 regions drawn uniformly.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from .annotations import load_round_boxes, matching_regions
from ..training.dataset import VisDialDataset, batch_to, collate
from ..text.vocab import Vocabulary
from ..core.device import resolve_device
from ..core.errors import InputFormatError
from ..core.files import read_json, write_text_atomic
from ..training.checkpoint import load_trained_model

TOP = 3


def category_phrases(names: list[str]) -> dict[tuple[str, ...], str]:
    """Word tuples that name each category: its name and listed synonyms."""
    words = yaml.safe_load(resources.files("visdial_lg").joinpath("resources/category_words.yaml").read_text())
    phrases = {}
    for name in names:
        for phrase in [name, *words.get(name, [])]:
            phrases[tuple(phrase.lower().split())] = name
    return phrases


def _singular(word: str, known: set[str]) -> str:
    for suffix in ("es", "s"):
        if word.endswith(suffix) and word[: -len(suffix)] in known:
            return word[: -len(suffix)]
    return word


def named_categories(tokens: list[str], phrases: dict[tuple[str, ...], str]) -> set[str]:
    """Categories named in a token sequence. Plural -s/-es is accepted; the longest phrase
    wins at each position, so "hot dog" names a hot dog, not a dog."""
    known = {w for p in phrases for w in p}
    words = [_singular(t.lower(), known) for t in tokens]
    longest = max(map(len, phrases), default=0)
    found, i = set(), 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            name = phrases.get(tuple(words[i: i + n]))
            if name:
                found.add(name)
                i += n
                break
        else:
            i += 1
    return found


def coco_round_boxes(instances: str | Path, tokens: str | Path, vocab: Vocabulary) -> dict:
    """(image_id, round_id) -> boxes [n, 4] (x1y1x2y2) of the instances of the categories
    the round's question or answer names; rounds naming none are left out."""
    from pycocotools.coco import COCO

    data = read_json(instances, "COCO instances file")
    if not isinstance(data, dict):
        raise InputFormatError(f"{instances}: not a COCO instances file (not a JSON object)")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco = COCO()  # the index of the JSON read above (COCO(path) would read it its own way)
        coco.dataset = data
        try:
            coco.createIndex()
        except (KeyError, TypeError, AttributeError) as e:
            raise InputFormatError(f"{instances}: not a COCO instances file ({e!r})") from e
    cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    phrases = category_phrases(list(cats.values()))
    table = {}
    with h5py.File(tokens, "r") as f:
        q_pool, q_len = f["question_tokens"][:], f["question_len"][:]
        a_pool, a_len = f["answer_tokens"][:], f["answer_len"][:]
        image_ids, questions, answers = f["image_id"][:], f["question"][:], f["answer"][:]
    for d, image_id in enumerate(image_ids):
        image_id = int(image_id)
        if image_id not in coco.imgs:
            continue
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None))
        for r in range(questions.shape[1]):
            if questions[d, r] < 0 or answers[d, r] < 0:
                continue
            words = vocab.to_words(q_pool[questions[d, r], : q_len[questions[d, r]]]) + \
                vocab.to_words(a_pool[answers[d, r], : a_len[answers[d, r]]])
            named = named_categories(words, phrases)
            boxes = [[x, y, x + w, y + h] for a in anns if cats[a["category_id"]] in named
                     for x, y, w, h in [a["bbox"]]]
            if boxes:
                table[(image_id, r + 1)] = torch.tensor(boxes, dtype=torch.float32)
    return table


def random_hit_probability(valid: int, matching: int, top: int = TOP) -> float:
    """P(at least one of `top` regions drawn without replacement among `valid` matches)."""
    top = min(top, valid)
    return 1.0 - math.comb(valid - matching, top) / math.comb(valid, top)


def grounding_accuracy(checkpoint: Path, tokens: Path, features: Path, out: Path, *, annotations: dict,
                       source: str, samples: int, batch_size: int = 32, device: str = "cpu",
                       seed: int = 0) -> dict:
    device = resolve_device(device)
    model, spec, _ = load_trained_model(checkpoint, device)
    loader = DataLoader(VisDialDataset(tokens, features, feature_dim=model.feature_dim), batch_size=batch_size, collate_fn=collate)
    hits = {"prior": [], "posterior": [], "random": []}
    annotated = 0
    for batch in tqdm(loader, desc=f"grounding {spec.run_id}", unit="batch"):
        on_device = batch_to(batch, device)
        dist = {k: v.float().cpu() for k, v in model.region_distributions(on_device).items()}  # [B, R, K]
        for b, image_id in enumerate(batch["image_id"].tolist()):
            valid = int(batch["num_boxes"][b])
            for r in range(dist["prior"].shape[1]):
                boxes = annotations.get((image_id, r + 1))
                if boxes is None or not bool(batch["round_mask"][b, r]):
                    continue
                annotated += 1
                match = matching_regions(batch["boxes"][b, :valid].float(), boxes)  # [valid]
                if not match.any():  # the detector never proposed the object: no model could hit it
                    continue
                for name in ("prior", "posterior"):
                    top = dist[name][b, r, :valid].topk(min(TOP, valid)).indices
                    hits[name].append(float(match[top].any()))
                hits["random"].append(random_hit_probability(valid, int(match.sum())))
    count = len(hits["prior"])
    chosen = sorted(random.Random(seed).sample(range(count), min(samples, count)))
    result = {"run": spec.run_id, "annotations": source, "annotated": annotated, "eligible": count,
              "count": len(chosen), "top": TOP,
              **{name: float(np.mean([values[i] for i in chosen])) if chosen else None
                 for name, values in hits.items()}}
    if not chosen:  # an honest empty result, not a failed pipeline (e.g. a tiny demo detector)
        result["note"] = (f"none of the {annotated} annotated rounds has an object that a region overlaps "
                          f"with IoU >= 0.5: accuracy undefined")
    write_text_atomic(out, json.dumps(result, indent=1))
    return result


def load_annotations(coco_instances: Path | None, grounding: Path | None, tokens: Path,
                     vocab: Path | None) -> tuple[dict, str]:
    """The round boxes and a description of where they came from."""
    if grounding is not None:
        return load_round_boxes(grounding), f"round boxes from {Path(grounding).name}"
    if coco_instances is None or vocab is None:
        raise InputFormatError("grounding needs --coco-instances and --vocab, or --grounding FILE")
    table = coco_round_boxes(coco_instances, tokens, Vocabulary.load(vocab))
    return table, f"COCO instances of the categories named in the round ({Path(coco_instances).name})"
