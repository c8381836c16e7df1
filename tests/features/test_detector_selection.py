"""Region selection (BUTD generate_tsv) against a direct per-class-loop reference."""

import numpy as np
import torch

from visdial_lg.features.anchors import nms
from visdial_lg.core.config import FeaturesConfig
from visdial_lg.features.model import BUTDDetector, preprocess
from visdial_lg.features.selection import describe_regions, max_class_confidence, select_regions, select_regions_batched


def _reference_max_conf(boxes, probs, iou):
    """BUTD: for each class, NMS over the proposals; max_conf[keep] = max(max_conf, score)."""
    max_conf = torch.zeros(boxes.shape[0])
    for c in range(probs.shape[1]):
        keep = nms(boxes, probs[:, c], iou)
        max_conf[keep] = torch.maximum(max_conf[keep], probs[keep, c])
    return max_conf


def _random_case(generator, n, classes=40):
    xy = torch.rand(n, 2, generator=generator) * 60
    wh = torch.rand(n, 2, generator=generator) * 40 + 4
    probs = (torch.randn(n, classes + 1, generator=generator) * 2).softmax(-1)
    return torch.cat([xy, xy + wh], 1), probs[:, 1:]


def test_vectorised_per_class_nms_equals_the_loop_over_classes_with_padding():
    generator = torch.Generator().manual_seed(0)
    cases = [_random_case(generator, n) for n in (17, 9, 1)]
    R = 17
    boxes = torch.zeros(3, R, 4)
    probs = torch.zeros(3, R, 40)
    valid = torch.zeros(3, R, dtype=torch.bool)
    for i, (b, p) in enumerate(cases):
        boxes[i, : len(b)], probs[i, : len(b)], valid[i, : len(b)] = b, p, True
    for iou in (0.3, 0.5):
        got = max_class_confidence(boxes, probs, valid, iou)
        for i, (b, p) in enumerate(cases):
            assert torch.equal(got[i, : len(b)], _reference_max_conf(b, p, iou))
            assert (got[i, len(b):] == 0).all()


def test_many_boxes_need_more_than_one_bitset_word():
    generator = torch.Generator().manual_seed(1)
    b, p = _random_case(generator, 70, classes=5)
    got = max_class_confidence(b[None], p[None], torch.ones(1, 70, dtype=torch.bool), 0.3)[0]
    assert torch.equal(got, _reference_max_conf(b, p, 0.3))


def _reference_selection(max_conf, conf_thresh, min_boxes, max_boxes):
    """BUTD's rule for one image, written out (generate_tsv.py): threshold, then clamp."""
    keep = [i for i, c in enumerate(max_conf.tolist()) if c >= conf_thresh]
    if min_boxes <= len(keep) <= max_boxes:
        return keep
    ranked = sorted(range(len(max_conf)), key=lambda i: (-float(max_conf[i]), i))
    return ranked[: min_boxes if len(keep) < min_boxes else max_boxes]


def test_batched_selection_equals_per_image_selection():
    """One batch of images of different proposal counts (padding = invalid), with ties,
    hitting every branch: threshold decides, too few (and fewer proposals than min_boxes), too many."""
    g = torch.Generator().manual_seed(0)
    for trial in range(40):
        counts = torch.randint(1, 30, (6,), generator=g).tolist()
        R = max(counts)
        conf = (torch.randint(0, 8, (6, R), generator=g).float() / 8)  # coarse: many equal scores
        valid = torch.arange(R)[None] < torch.tensor(counts)[:, None]
        conf = conf.masked_fill(~valid, 0.0)
        thresh, min_boxes, max_boxes = [(0.5, 3, 10), (0.9, 5, 8), (0.0, 2, 4), (0.3, 10, 12)][trial % 4]
        got = select_regions_batched(conf, valid, thresh, min_boxes, max_boxes)
        for i, n in enumerate(counts):
            assert got[i].tolist() == _reference_selection(conf[i, :n], thresh, min_boxes, max_boxes), (trial, i)


def test_selection_threshold_then_min_max_clamp_in_butd_order():
    conf = torch.tensor([0.1, 0.5, 0.05, 0.3, 0.9, 0.25])
    # 4 pass 0.2, within [2, 5]: proposal order
    assert select_regions(conf, 0.2, 2, 5).tolist() == [1, 3, 4, 5]
    # too few pass: top min_boxes by max_conf
    assert select_regions(conf, 0.6, 3, 5).tolist() == [4, 1, 3]
    # too many pass: top max_boxes by max_conf
    assert select_regions(conf, 0.0, 1, 2).tolist() == [4, 1]
    # fewer proposals than min_boxes: all of them
    assert select_regions(conf[:2], 0.9, 3, 5).tolist() == [1, 0]


def test_describe_regions_uses_the_best_object_class_and_its_box_deltas():
    boxes = torch.tensor([[10.0, 10.0, 29.0, 19.0]])
    class_prob = torch.tensor([[0.5, 0.1, 0.3, 0.1]])  # background is most likely, class 1 (index 2) is best
    deltas = torch.zeros(1, 4, 4)
    deltas[0, 2] = torch.tensor([0.5, 0.0, 0.0, 0.0])  # shift by half the 20-pixel width
    attr_prob = torch.tensor([[0.6, 0.1, 0.2, 0.05, 0.05]])
    out = describe_regions(boxes, torch.ones(1, 2048), class_prob, deltas, attr_prob, (100, 100), top_attrs=2)
    assert out["cls_indices"].tolist() == [1] and torch.allclose(out["cls_scores"], torch.tensor([0.3]))
    assert torch.allclose(out["boxes"], torch.tensor([[20.0, 10.0, 40.0, 20.0]]))  # +1 decoding
    assert out["attr_indices"].tolist() == [[1, 0]] and torch.allclose(out["attr_scores"], torch.tensor([[0.2, 0.1]]))
    assert torch.equal(out["proposal_boxes"], boxes)


class _FixedProposals(torch.nn.Module):
    """Stands in for the RPN: the same proposals (resized pixels) for the one image."""

    def __init__(self, proposals):
        super().__init__()
        self.proposals = proposals

    def forward(self, res4, valid_cells, image_sizes, scales):
        return [self.proposals]


class _FixedScores(torch.nn.Module):
    """Stands in for the region head: given class probabilities, zero features and deltas."""

    def __init__(self, class_prob):
        super().__init__()
        self.class_prob = class_prob

    def forward(self, res4, rois):
        R = rois.shape[0]
        return torch.zeros(R, 2048), self.class_prob, torch.zeros(R, 1601, 4), torch.full((R, 401), 1 / 401)


def test_selection_nms_runs_on_original_pixel_boxes_as_butd():
    # With +1 areas the IoU depends on the frame: these 15-pixel boxes overlap by
    # 7/23 = 0.304 in original pixels, but by 13/45 = 0.289 once upscaled x2.
    original = torch.tensor([[4.0, 4.0, 18.0, 18.0], [12.0, 4.0, 26.0, 18.0]])
    image = np.zeros((32, 40, 3), np.uint8)
    tensor, scale = preprocess(image, 64, 96)
    assert scale == 2.0
    class_prob = torch.full((2, 1601), 0.1 / 1600)
    class_prob[0, 1], class_prob[1, 1] = 0.9, 0.5  # both prefer object 0; only the first has it above the second
    detector = BUTDDetector(FeaturesConfig.from_dict(
        {"depth": 50, "res5_halve": True, "min_size": 64, "max_size": 96, "min_boxes": 1, "max_boxes": 5}))
    detector.proposal_generator = _FixedProposals(original * scale)
    detector.roi_heads = _FixedScores(class_prob)
    out = detector.eval()(tensor[None], torch.tensor([list(tensor.shape[1:])]), torch.tensor([scale]))[0]
    # BUTD: IoU 0.304 > 0.3, the second box is suppressed for object 0 and falls below conf_thresh.
    # (NMS on the resized boxes keeps both.)
    assert torch.equal(out["proposal_boxes"], original[:1])
    assert out["cls_indices"].tolist() == [0]
    assert torch.allclose(out["cls_scores"], torch.tensor([0.9]))


def test_equal_scores_rank_by_increasing_proposal_index():
    # Two proposals in the same RoIPool bins get identical scores; the earlier one (higher RPN score)
    # wins the class NMS and the max_conf ranking. BUTD's argsort()[::-1] has no fixed rule for ties.
    boxes = torch.tensor([[0.0, 0.0, 40.0, 40.0], [3.0, 2.0, 42.0, 41.0], [100.0, 100.0, 140.0, 140.0]])
    probs = torch.tensor([[0.6, 0.1], [0.6, 0.1], [0.1, 0.6]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    for order in ([0, 1, 2], [1, 0, 2]):  # whichever twin comes first survives
        max_conf = max_class_confidence(boxes[order][None], probs[order][None], valid, 0.3)[0]
        assert max_conf.tolist() == [probs[0, 0].item(), 0.0, probs[2, 1].item()]
    assert select_regions(torch.tensor([0.3, 0.5, 0.3, 0.3]), 0.9, 3, 3).tolist() == [1, 0, 2]
