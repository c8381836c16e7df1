"""Exact score ties among one image's proposals, and what the selection frame and tie order change.

    python bench/selection_ties.py                   # real network (R101, 600-1000, 300 proposals, 100 boxes)
    python bench/selection_ties.py --images 1 --depth 50 --res5-halve   # quicker, not the Caffe network

Random weights (no trained file is available here) on synthetic images at COCO sizes:
smooth gradients with flat rectangles (as bench/extract.py) and uniform noise. Per image:

- proposals that fall into the same RoIPool bins (same rounded x1, y1, x2, y2 at 1/16),
  identical pooled inputs, identical class-score rows, tied class scores within one class
  (beyond identical rows), tied non-zero max_conf;
- the selection on original-pixel boxes (ours, as BUTD) against the same on resized-pixel boxes;
- ours against a numpy transcription of generate_tsv (py_cpu_nms with `argsort()[::-1]`), the same
  transcription with ties in increasing index order (ours: should agree exactly), and ours with
  ties broken the other way (higher proposal index first).

Prints one JSON document. 1-2 minutes for the default 3 images on a 2-core CPU;
the figures are in docs/features.md (Selection frame and exact ties).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time

import numpy as np
import torch
from torchvision.ops import roi_pool

from visdial_lg.features.anchors import pairwise_iou
from visdial_lg.features.backbone import level_sizes
from visdial_lg.core.config import FeaturesConfig
from visdial_lg.features.model import build_detector, preprocess
from visdial_lg.features.selection import max_class_confidence, select_regions

COCO_SIZES = [(480, 640), (640, 480), (427, 640), (375, 500), (612, 612)]  # (h, w)


def synthetic_image(h: int, w: int, seed: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([(rng.integers(0, 255) + x * rng.random() + y * rng.random()) % 256 for _ in range(3)], -1)
    for _ in range(6):
        x1, y1 = rng.integers(0, w // 2), rng.integers(0, h // 2)
        image[y1:y1 + rng.integers(10, h // 2), x1:x1 + rng.integers(10, w // 2)] = rng.integers(0, 255, 3)
    return image.astype(np.uint8)


def duplicated(rows: list[bytes]) -> tuple[set[int], int]:
    """(indices of rows equal to at least one other row, number of groups of such rows)."""
    groups: dict[bytes, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row, []).append(i)
    tied = [g for g in groups.values() if len(g) > 1]
    return {i for g in tied for i in g}, len(tied)


def counted(indices: set[int], groups: int) -> dict:
    return {"proposals": len(indices), "groups": groups}


def digests(tensor: torch.Tensor) -> list[bytes]:
    return [hashlib.sha1(row.numpy().tobytes()).digest() for row in tensor.reshape(tensor.shape[0], -1)]


def descending(values: np.ndarray, ties: str) -> np.ndarray:
    """BUTD's `values.argsort()[::-1]` ("numpy"), or with ties in increasing index order ("lower_first")."""
    return values.argsort()[::-1] if ties == "numpy" else np.argsort(-values, kind="stable")


def py_cpu_nms(dets: np.ndarray, thresh: float, ties: str) -> list[int]:
    """py-faster-rcnn's nms/py_cpu_nms.py (gpu_nms orders the boxes the same way)."""
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = descending(scores, ties)
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def butd_selection(cls_boxes: np.ndarray, scores: np.ndarray, cfg, ties: str) -> tuple[np.ndarray, np.ndarray]:
    """generate_tsv.py:get_detections_from_im after im_detect: (max_conf, keep_boxes)."""
    max_conf = np.zeros(scores.shape[0])
    for c in range(1, scores.shape[1]):
        cls_scores = scores[:, c]
        dets = np.hstack((cls_boxes, cls_scores[:, np.newaxis])).astype(np.float32)
        keep = np.array(py_cpu_nms(dets, cfg.class_nms, ties))
        max_conf[keep] = np.where(cls_scores[keep] > max_conf[keep], cls_scores[keep], max_conf[keep])
    keep_boxes = np.where(max_conf >= cfg.conf_thresh)[0]
    if len(keep_boxes) < cfg.min_boxes:
        keep_boxes = descending(max_conf, ties)[: cfg.min_boxes]
    elif len(keep_boxes) > cfg.max_boxes:
        keep_boxes = descending(max_conf, ties)[: cfg.max_boxes]
    return max_conf, keep_boxes


def ours(boxes: torch.Tensor, probs: torch.Tensor, cfg, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Our selection on one image; flip=True breaks ties the other way (higher index first)."""
    if flip:
        boxes, probs = boxes.flip(0), probs.flip(0)
    R = boxes.shape[0]
    max_conf = max_class_confidence(boxes[None], probs[None], torch.ones(1, R, dtype=torch.bool), cfg.class_nms)[0]
    keep = select_regions(max_conf, cfg.conf_thresh, cfg.min_boxes, cfg.max_boxes)
    if flip:
        max_conf, keep = max_conf.flip(0), R - 1 - keep
    return max_conf, keep


def compare(conf_a, keep_a, conf_b, keep_b, twins: set[int]) -> dict:
    """Two selections of one image: max_conf differences (and whether all of them are proposals
    with an identical class row), kept regions only in one of them, same ordered list."""
    differs = set(torch.nonzero(torch.as_tensor(conf_a).float() != torch.as_tensor(conf_b).float()).flatten().tolist())
    a, b = [int(i) for i in keep_a], [int(i) for i in keep_b]
    return {"max_conf_differs": len(differs), "all_among_identical_rows": differs <= twins,
            "kept_only_in_ours": len(set(a) - set(b)), "kept_only_in_other": len(set(b) - set(a)),
            "same_kept_list": a == b}


def tie_order(values: np.ndarray) -> dict:
    """How argsort()[::-1] orders the tied groups of one score vector."""
    order = values.argsort()[::-1]
    result = {"higher_index_first": 0, "lower_index_first": 0, "mixed": 0}
    sorted_values = values[order]
    start = 0
    for end in range(1, len(order) + 1):
        if end == len(order) or sorted_values[end] != sorted_values[start]:
            if end - start > 1:
                group = order[start:end].tolist()
                key = ("higher_index_first" if group == sorted(group, reverse=True)
                       else "lower_index_first" if group == sorted(group) else "mixed")
                result[key] += 1
            start = end
    return result


def measure(model, image: np.ndarray) -> dict:
    cfg = model.cfg
    tensor, scale = preprocess(image, cfg.min_size, cfg.max_size)
    sizes, scales = torch.tensor([list(tensor.shape[1:])]), torch.tensor([scale])
    start = time.perf_counter()
    res4 = model.backbone(tensor[None], sizes)
    proposals = model.proposal_generator(res4, level_sizes(sizes)[16], sizes, scales)[0]  # resized pixels
    rois = torch.cat([proposals.new_zeros(len(proposals), 1), proposals], 1)
    pooled = roi_pool(res4, rois, (14, 14), 1.0 / 16)  # the head's RoIPool, kept to compare its inputs
    class_prob, _, _ = model.roi_heads.box_predictor(model.roi_heads.res5_pool(pooled))
    seconds = time.perf_counter() - start
    R = len(proposals)
    probs = class_prob[:, 1:].contiguous()
    original = proposals / scales[0]  # what the detector selects on and saves

    bins = torch.floor(proposals / 16 + 0.5).long()  # roi_pool rounds half away from zero
    column_ties = 0  # class scores equal to another proposal's in the same class, identical rows excluded
    row_ids = digests(class_prob)
    for c in range(probs.shape[1]):
        column = probs[:, c].numpy()
        _, inverse, counts = np.unique(column, return_inverse=True, return_counts=True)
        for group in np.nonzero(counts > 1)[0]:
            members = np.nonzero(inverse == group)[0]
            if len({row_ids[i] for i in members}) > 1:  # each member ties with a different row
                column_ties += len(members)
    max_conf, keep = ours(original, probs, cfg)
    nonzero = max_conf[max_conf > 0]
    tied_conf = int((nonzero[:, None] == nonzero[None, :]).sum(1).gt(1).sum())
    resized_conf, resized_keep = ours(proposals, probs, cfg)
    flip_conf, flip_keep = ours(original, probs, cfg, flip=True)
    butd_conf, butd_keep = butd_selection(original.numpy(), class_prob.numpy(), cfg, "numpy")
    check_conf, check_keep = butd_selection(original.numpy(), class_prob.numpy(), cfg, "lower_first")
    tie_orders = {"higher_index_first": 0, "lower_index_first": 0, "mixed": 0}
    for column in [max_conf.numpy()] + [probs[:, c].numpy() for c in range(probs.shape[1])]:
        for key, value in tie_order(column).items():
            tie_orders[key] += value
    same_bins, twins = duplicated(digests(bins)), duplicated(row_ids)
    same_row = torch.tensor([[a == b for b in row_ids] for a in row_ids]).triu(1)
    twin_iou = pairwise_iou(original, original)[same_row]  # every pair of proposals with identical rows
    return {
        "original_hw": list(image.shape[:2]), "resized_hw": list(tensor.shape[1:]), "scale": scale,
        "proposals": R, "network_seconds": round(seconds, 1),
        "same_roipool_bins": counted(*same_bins),
        "identical_pooled_inputs": counted(*duplicated(digests(pooled))),
        "identical_class_rows": counted(*twins),
        "identical_rows_all_in_same_bins": twins[0] <= same_bins[0],
        "identical_row_pairs": len(twin_iou),
        "identical_row_pairs_iou_above_class_nms": int((twin_iou > cfg.class_nms).sum()),
        "identical_row_pairs_min_iou": float(twin_iou.min()) if len(twin_iou) else None,
        "class_score_ties_not_from_identical_rows": int(column_ties),
        "max_conf_zero": int((max_conf == 0).sum()), "max_conf_nonzero_tied": tied_conf,
        "max_conf_range": [float(nonzero.min()), float(nonzero.max())],
        "kept": len(keep), "kept_with_identical_row": len(set(keep.tolist()) & twins[0]),
        "resized_frame_vs_ours": compare(max_conf, keep, resized_conf, resized_keep, twins[0]),
        "ties_higher_index_first_vs_ours": compare(max_conf, keep, flip_conf, flip_keep, twins[0]),
        "numpy_butd_vs_ours": compare(max_conf, keep, butd_conf, butd_keep, twins[0]),
        "numpy_butd_lower_index_first_vs_ours": compare(max_conf, keep, check_conf, check_keep, twins[0]),
        "numpy_argsort_reversed_tie_groups": tie_orders,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--depth", type=int, default=101)
    parser.add_argument("--res5-halve", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    section = {"depth": args.depth, "res5_halve": args.res5_halve}  # other keys: the real defaults
    model = build_detector(FeaturesConfig.from_dict(section), "random", seed=0)
    results, start = [], time.perf_counter()
    for i in range(args.images):
        h, w = COCO_SIZES[i % len(COCO_SIZES)]
        kind = "noise" if i % 3 == 2 else "gradient_rectangles"
        results.append({"image": kind, **measure(model, synthetic_image(h, w, i + 1, kind))})
    from numpy._core._multiarray_umath import __cpu_features__  # which sort numpy dispatches to
    print(json.dumps({
        "config": {**section, "weights": "random", "seed": 0, **{k: getattr(model.cfg, k) for k in (
            "min_size", "max_size", "post_nms_topk", "class_nms", "conf_thresh", "min_boxes", "max_boxes")}},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads": args.threads, "avx512f": bool(__cpu_features__.get("AVX512F")),
                    "torch": torch.__version__, "numpy": np.__version__,
                    "NPY_DISABLE_CPU_FEATURES": os.environ.get("NPY_DISABLE_CPU_FEATURES", "")},
        "seconds": round(time.perf_counter() - start, 1),
        "images": results,
    }, indent=1))


if __name__ == "__main__":
    main()
