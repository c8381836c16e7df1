"""Caffe anchors and +1 box arithmetic against hand-computed cases (docs/upstream.md#butd-detector)."""

import math

import torch

from visdial_lg.features.anchors import (caffe_cell_anchors, clip_boxes, decode_boxes, grid_anchors, nms,
                                         pairwise_iou)

# py-faster-rcnn generate_anchors(ratios=[0.5, 1, 2], scales=[4, 8, 16, 32]) by hand:
# ratio 0.5 -> base 23 x 12, ratio 1 -> 16 x 16, ratio 2 -> 11 x 22, centred at 7.5, times each scale.
CAFFE_ANCHORS = [
    [-38, -16, 53, 31], [-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199],
    [-24, -24, 39, 39], [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263],
    [-14, -36, 29, 51], [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359],
]


def test_cell_anchors_are_the_caffe_ones_in_ratio_major_order():
    assert caffe_cell_anchors().tolist() == CAFFE_ANCHORS


def test_grid_anchors_shift_by_the_stride_in_y_x_anchor_order():
    cell = caffe_cell_anchors()
    grid = grid_anchors(cell, height=2, width=3, stride=16)
    assert grid.shape == (2 * 3 * 12, 4)
    for y in range(2):
        for x in range(3):
            for a in (0, 5, 11):
                expected = cell[a] + torch.tensor([16.0 * x, 16.0 * y, 16.0 * x, 16.0 * y])
                assert torch.equal(grid[(y * 3 + x) * 12 + a], expected)


def test_decode_uses_plus_one_widths():
    box = torch.tensor([[0.0, 0.0, 9.0, 19.0]])  # 10 x 20 pixels, centre (5, 10)
    deltas = torch.tensor([[0.1, 0.0, math.log(2.0), 0.0]])
    # centre x 0.1 * 10 + 5 = 6, width 20 -> x1 = -4, x2 = 16; y unchanged: 10 -+ 10 -> 0, 20
    assert torch.allclose(decode_boxes(box, deltas), torch.tensor([[-4.0, 0.0, 16.0, 20.0]]))


def test_decode_clamps_huge_size_deltas_instead_of_overflowing():
    out = decode_boxes(torch.tensor([[0.0, 0.0, 15.0, 15.0]]), torch.tensor([[0.0, 0.0, 1e4, 1e4]]))
    assert torch.isfinite(out).all()


def test_clip_to_last_pixel():
    boxes = torch.tensor([[-5.0, -1.0, 120.0, 50.0]])
    assert clip_boxes(boxes, 40, 100).tolist() == [[0.0, 0.0, 99.0, 39.0]]


def test_iou_counts_pixels_inclusively():
    a = torch.tensor([[0.0, 0.0, 9.0, 9.0]])
    b = torch.tensor([[5.0, 0.0, 14.0, 9.0]])
    # intersection 5 x 10 = 50, areas 100 and 100 -> 50 / 150
    assert torch.allclose(pairwise_iou(a, b), torch.tensor([[1.0 / 3.0]]))


def test_nms_suppresses_with_plus_one_iou():
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0], [30.0, 30.0, 40.0, 40.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    # Plain IoU of the first two is 36 / 126 = 0.286 (kept at 0.3); with +1 it is 1/3 (suppressed).
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]
