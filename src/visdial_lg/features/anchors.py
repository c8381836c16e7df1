"""Caffe anchors and the "+1" box arithmetic of py-faster-rcnn / BUTD.

The BUTD network was trained and is run with pixel-inclusive boxes: a box
[x1, y1, x2, y2] covers x2 - x1 + 1 pixels. Everything here keeps that
convention (docs/upstream.md#butd-detector), so that proposals and refined boxes
match the Caffe network's rather than detectron2's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchvision

# BUTD test.prototxt: feat_stride 16, scales (4, 8, 16, 32), ratios (0.5, 1, 2), base_size 16.
FEAT_STRIDE = 16
ANCHOR_SCALES = (4, 8, 16, 32)
ANCHOR_RATIOS = (0.5, 1.0, 2.0)
# Box deltas larger than this (log space) are clamped before exp(): the Caffe code
# has no clamp, but random or degenerate weights would overflow to inf (detectron2's bound).
DELTA_CLAMP = math.log(1000.0 / 16)


def _boxes_from_centre(ctr_x: float, ctr_y: float, ws: np.ndarray, hs: np.ndarray) -> np.ndarray:
    return np.stack([ctr_x - 0.5 * (ws - 1), ctr_y - 0.5 * (hs - 1), ctr_x + 0.5 * (ws - 1), ctr_y + 0.5 * (hs - 1)], 1)


def caffe_cell_anchors(base_size: int = 16, ratios=ANCHOR_RATIOS, scales=ANCHOR_SCALES) -> torch.Tensor:
    """The A = len(ratios) * len(scales) anchors of one feature-map cell, ratio-major,
    centred at ((base_size - 1) / 2, ...) with widths rounded as Caffe's generate_anchors. [A, 4]"""
    ctr = 0.5 * (base_size - 1)
    area = float(base_size * base_size)
    ratios = np.asarray(ratios, dtype=np.float64)
    ratio_ws = np.round(np.sqrt(area / ratios))  # numpy round: half to even, as Caffe (python)
    ratio_hs = np.round(ratio_ws * ratios)
    anchors = []
    for w, h in zip(ratio_ws, ratio_hs):  # ratio outer, scale inner
        scales_arr = np.asarray(scales, dtype=np.float64)
        anchors.append(_boxes_from_centre(ctr, ctr, w * scales_arr, h * scales_arr))
    return torch.from_numpy(np.concatenate(anchors, 0)).float()  # [A, 4]


def grid_anchors(cell_anchors: torch.Tensor, height: int, width: int, stride: int = FEAT_STRIDE) -> torch.Tensor:
    """Anchors of every cell of a height x width map, ordered (y, x, anchor) as the
    Caffe proposal layer orders its scores and deltas. [height * width * A, 4]"""
    device = cell_anchors.device
    shift_x = torch.arange(width, device=device, dtype=torch.float32) * stride
    shift_y = torch.arange(height, device=device, dtype=torch.float32) * stride
    sy, sx = torch.meshgrid(shift_y, shift_x, indexing="ij")
    shifts = torch.stack([sx, sy, sx, sy], dim=-1).reshape(-1, 1, 4)  # [H*W, 1, 4]
    return (shifts + cell_anchors.float().reshape(1, -1, 4)).reshape(-1, 4)


def decode_boxes(boxes: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Apply (dx, dy, dw, dh) deltas to boxes with +1 widths (bbox_transform_inv).
    boxes [..., 4], deltas [..., 4] (broadcastable) -> [..., 4] float32."""
    boxes, deltas = boxes.float(), deltas.float()
    widths = boxes[..., 2] - boxes[..., 0] + 1.0
    heights = boxes[..., 3] - boxes[..., 1] + 1.0
    ctr_x = boxes[..., 0] + 0.5 * widths
    ctr_y = boxes[..., 1] + 0.5 * heights
    dx, dy = deltas[..., 0], deltas[..., 1]
    dw, dh = deltas[..., 2].clamp(max=DELTA_CLAMP), deltas[..., 3].clamp(max=DELTA_CLAMP)
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    pred_w = torch.exp(dw) * widths
    pred_h = torch.exp(dh) * heights
    return torch.stack(
        [pred_ctr_x - 0.5 * pred_w, pred_ctr_y - 0.5 * pred_h, pred_ctr_x + 0.5 * pred_w, pred_ctr_y + 0.5 * pred_h], -1
    )


def clip_boxes(boxes: torch.Tensor, height: torch.Tensor | float, width: torch.Tensor | float) -> torch.Tensor:
    """Clip to [0, width - 1] x [0, height - 1] (pixel-inclusive, as Caffe's clip_boxes).
    height/width: scalars or tensors broadcastable to boxes[..., 0]."""
    x_max = torch.as_tensor(width, dtype=boxes.dtype, device=boxes.device) - 1
    y_max = torch.as_tensor(height, dtype=boxes.dtype, device=boxes.device) - 1
    x1 = torch.minimum(boxes[..., 0].clamp(min=0), x_max)
    y1 = torch.minimum(boxes[..., 1].clamp(min=0), y_max)
    x2 = torch.minimum(boxes[..., 2].clamp(min=0), x_max)
    y2 = torch.minimum(boxes[..., 3].clamp(min=0), y_max)
    return torch.stack([x1, y1, x2, y2], -1)


def _inclusive_to_exclusive(boxes: torch.Tensor) -> torch.Tensor:
    # IoU with +1 widths equals the plain IoU of boxes whose x2, y2 are moved by +1.
    return boxes + boxes.new_tensor([0.0, 0.0, 1.0, 1.0])


def pairwise_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """IoU with +1 areas, as Caffe's nms. [..., N, 4], [..., M, 4] -> [..., N, M]"""
    a, b = _inclusive_to_exclusive(boxes_a.float()), _inclusive_to_exclusive(boxes_b.float())
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).prod(-1)
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS with +1 areas (Caffe's py_cpu_nms / gpu_nms), on torchvision's kernel.
    Returns kept indices in decreasing score order."""
    return torchvision.ops.nms(_inclusive_to_exclusive(boxes.float()), scores.float(), iou_threshold)
