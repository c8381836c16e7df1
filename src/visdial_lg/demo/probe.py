"""Goal 1 of docs/demo.md, "Evidence that the chain works": a linear probe reads each
annotated object's colour and shape from its region feature. Object rows of a features
file come from the regenerated scenes (`regenerate`); folds are grouped by image and
fitted on the demo's train images only.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..core.errors import InputFormatError
from ..core.paths import FEATURES
from .layout import DemoImage
from .regenerate import ATTRIBUTES, object_labels, regenerate

PROBE_MIN = {"colour": 0.95, "shape": 0.80}  # goal 1: held-out probe accuracy


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [n, 4] with boxes b [m, 4] (x1, y1, x2, y2) -> [n, m]."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass
class ObjectRows:
    """The region features of annotated objects, with each object's attributes."""

    features: np.ndarray  # [n, D] float32
    image_id: np.ndarray  # [n] int64
    labels: dict[str, list[str]]  # attribute -> [n] values
    iou: np.ndarray  # [n] IoU of the object's box with its region's
    objects: int  # annotated objects of the images asked for
    unmatched: int  # objects no region of the features file covers with IoU >= min_iou
    missing_images: int  # images not in the features file


def object_rows(features_path: str | Path, images: list[DemoImage], min_iou: float = 0.99) -> ObjectRows:
    """The feature row of every object of `images`: the region (among the image's valid ones)
    whose box best matches the object's box, if that IoU is >= min_iou. The demo's regions
    (`region_boxes.json`, `features.given_boxes: demo`) hold each object's exact box, so
    every object is found; a detector's proposals would match few."""
    labels = [object_labels(im) for im in images]
    feats, ids, ious, values = [], [], [], {a: [] for a in ATTRIBUTES}
    unmatched = missing = 0
    with h5py.File(features_path, "r") as f:
        row_of = {int(i): r for r, i in enumerate(f["image_id"][:])}
        num_boxes = f["num_boxes"][:]
        for im, objs in zip(images, labels):
            r = row_of.get(im.image_id)
            if r is None:
                missing += 1
                unmatched += len(objs)
                continue
            k = int(num_boxes[r])
            iou = box_iou(np.array([o["box"] for o in objs]), f["boxes"][r, :k])
            row_feats = f["features"][r, :k]
            for o, overlaps in zip(objs, iou):
                best = int(np.argmax(overlaps)) if k else -1
                if best < 0 or overlaps[best] < min_iou:
                    unmatched += 1
                    continue
                feats.append(row_feats[best])
                ids.append(im.image_id)
                ious.append(float(overlaps[best]))
                for a in ATTRIBUTES:
                    values[a].append(o[a])
    dim = feats[0].shape[0] if feats else 0
    return ObjectRows(np.array(feats, np.float32).reshape(-1, dim), np.array(ids, np.int64), values,
                      np.array(ious), sum(len(o) for o in labels), unmatched, missing)


# ----------------------------------------------------------------------------- the linear probe

def grouped_folds(groups: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """`folds` boolean test masks over the samples, splitting the distinct groups (images) at
    random into near-equal parts: no group is on both sides of a fold."""
    unique = np.unique(groups)
    if len(unique) < folds:
        raise InputFormatError(f"{len(unique)} images cannot be split into {folds} folds")
    order = np.random.default_rng(seed).permutation(unique)
    return [np.isin(groups, part) for part in np.array_split(order, folds)]


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both scaled by the train part's mean and standard deviation (constant columns: 1)."""
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, c: float = 1.0, max_iter: int = 300):
    """Multinomial logistic regression, L2-penalised as scikit-learn's default
    (minimises C * sum of cross-entropies + |W|^2 / 2; the bias is not penalised), by L-BFGS.
    Returns (W [D, classes], b [classes]) as numpy."""
    import torch  # only the probe needs it

    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.long)
    w = torch.zeros(xt.shape[1], classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")
    n = len(yt)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt, reduction="sum") + (w * w).sum() / (2 * c)
        loss = loss / n  # same minimiser, better-scaled steps
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy()


def probe(features: np.ndarray, labels: list, groups: np.ndarray, folds: int = 5, seed: int = 0,
          c: float = 1.0) -> dict:
    """Held-out accuracy of a linear probe predicting `labels` from `features`, cross-validated
    over `folds` folds grouped by `groups` (images), features standardised on each training part.
    Returns accuracy (over all objects, each tested in its held-out fold), the mean and list of
    the per-fold accuracies, chance (the majority class's share), counts per class."""
    classes = sorted(set(labels))
    index = {v: i for i, v in enumerate(classes)}
    y = np.array([index[v] for v in labels])
    x = np.asarray(features, np.float64)
    per_fold, correct = [], 0
    for test in grouped_folds(np.asarray(groups), folds, seed):
        train_x, test_x = standardise(x[~test], x[test])
        w, b = fit_softmax(train_x, y[~test], len(classes), c)
        hits = int(((test_x @ w + b).argmax(1) == y[test]).sum())
        per_fold.append(hits / int(test.sum()))
        correct += hits
    counts = collections.Counter(labels)
    return {"accuracy": correct / len(y), "fold_mean": float(np.mean(per_fold)), "folds": per_fold,
            "chance": max(counts.values()) / len(y),
            "classes": {v: counts[v] for v in classes}}


def probe_demo(demo_dir: str | Path, folds: int = 5, seed: int = 0, c: float = 1.0) -> dict:
    """Goal 1 on a demo working directory: the probe on the objects of the train2014 images
    (the v0.9 / v1.0 training images; rows of `results/features/trainval2014.h5`)."""
    demo_dir = Path(demo_dir)
    resources = demo_dir / "resources" / "demo"
    images = regenerate(resources)["train2014"]
    features_path = demo_dir / FEATURES.format(imageset="trainval2014")  # train2014 + val2014 images
    rows = object_rows(features_path, images)
    if len(rows.image_id) == 0:
        raise InputFormatError(f"{features_path}: no region matches an annotated object of the train2014 images")
    out = {"features": str(features_path), "image_set": "train2014 (fitted and tested on train images only)",
           "labels": "demo generator, regenerated from MANIFEST.json and checked against the demo's files",
           "images": len(np.unique(rows.image_id)), "objects": rows.objects, "matched": int(len(rows.image_id)),
           "unmatched": rows.unmatched, "min_iou": float(rows.iou.min()), "folds": folds, "seed": seed, "C": c,
           "attributes": {}}
    for attribute in ATTRIBUTES:
        result = probe(rows.features, rows.labels[attribute], rows.image_id, folds, seed, c)
        if attribute in PROBE_MIN:
            result["threshold"] = PROBE_MIN[attribute]
            result["pass"] = result["accuracy"] >= PROBE_MIN[attribute]
        out["attributes"][attribute] = result
    out["pass"] = all(out["attributes"][a]["pass"] for a in PROBE_MIN)
    return out


