"""The RoI pooling used by the region head behaves as Caffe's legacy ROIPooling (hand-computed cases)."""

import torch
from torchvision.ops import roi_pool

from visdial_lg.features.roi_heads import Res5ROIHeads


def _feature_map():
    return torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)  # value = 4 * y + x


def test_bins_use_rounded_inclusive_roi_and_floor_ceil_edges():
    # x2 = 31 -> round(31 / 16) = 2: cells 0..2 (3 cells, inclusive); 2 bins of 1.5 cells:
    # bin 0 = cells [floor(0), ceil(1.5)) = 0..1, bin 1 = [floor(1.5), ceil(3)) = 1..2.
    out = roi_pool(_feature_map(), torch.tensor([[0.0, 0.0, 0.0, 31.0, 31.0]]), (2, 2), 1.0 / 16)
    assert out[0, 0].tolist() == [[5.0, 6.0], [9.0, 10.0]]


def test_bins_outside_the_map_are_zero():
    # cells 3..5 on a 4 x 4 map: bin 0 holds cell 3 only, bin 1 (cells 4..5) is empty -> 0.
    out = roi_pool(_feature_map(), torch.tensor([[0.0, 48.0, 48.0, 80.0, 80.0]]), (2, 2), 1.0 / 16)
    assert out[0, 0].tolist() == [[15.0, 0.0], [0.0, 0.0]]


def test_coordinates_round_half_away_from_zero():
    # 8 / 16 = 0.5 rounds to 1 (C round), not to 0 (round half to even).
    out = roi_pool(_feature_map() * -1 + 100, torch.tensor([[0.0, 8.0, 8.0, 8.0, 8.0]]), (1, 1), 1.0 / 16)
    assert out.item() == 100.0 - 5.0


def test_region_head_pools_14x14_and_returns_2048_features():
    torch.manual_seed(0)
    heads = Res5ROIHeads(res5_halve=True).eval()
    res4 = torch.rand(2, 1024, 3, 4)
    rois = torch.tensor([[0.0, 0.0, 0.0, 40.0, 30.0], [1.0, 8.0, 4.0, 60.0, 44.0]])
    with torch.no_grad():
        pool5 = heads.pool5(res4, rois)
        alone = heads.pool5(res4[1:], torch.tensor([[0.0, 8.0, 4.0, 60.0, 44.0]]))
    assert pool5.shape == (2, 2048) and pool5.dtype == torch.float32
    assert torch.allclose(pool5[1], alone[0], atol=1e-5)  # a region only sees its own image
