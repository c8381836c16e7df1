"""The bottom-up-attention Faster R-CNN (BUTD Caffe `test.prototxt`) in plain PyTorch.

    preprocess:  BGR uint8 -> minus pixel mean -> bilinear resize (short side min_size, long <= max_size)
    backbone:    ResNet C4 -> res4 [B, 1024, H/16, W/16]
    proposals:   RPN + Caffe proposal layer -> <= post_nms_topk boxes per image (or the given boxes)
    roi_heads:   RoIPool 14x14 -> res5 -> mean = pool5 [R, 2048]; classes, boxes, attributes
    selection:   per-class NMS -> max_conf -> threshold and [min_boxes, max_boxes]

docs/features.md explains the design, the weight layouts and every deviation.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from ..core.config import ConfigError, FeaturesConfig
from ..core.errors import InputFormatError
from .backbone import PIXEL_MEANS_BGR, ResNetC4, level_sizes
from .roi_heads import Res5ROIHeads
from .rpn import RPN
from .selection import describe_regions, max_class_confidence, select_regions_batched
from .weights import init_random_weights, load_weights


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """Caffe's im_scale: short side to min_size unless the long side would exceed max_size."""
    scale = min_size / min(height, width)
    if round(scale * max(height, width)) > max_size:  # np.round in Caffe: half to even, as Python's round
        scale = max_size / max(height, width)
    return scale


def preprocess(image_bgr: np.ndarray, min_size: int, max_size: int) -> tuple[torch.Tensor, float]:
    """uint8 [H, W, 3] BGR -> (float32 [3, h, w], scale): mean subtracted, then cv2 bilinear
    resize, as Caffe's _get_image_blob (the order matters at the borders)."""
    is_array = isinstance(image_bgr, np.ndarray)
    if not is_array or image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        shape = getattr(image_bgr, "shape", None)
        dtype = getattr(image_bgr, "dtype", type(image_bgr).__name__)
        raise InputFormatError(f"image must be a uint8 [H, W, 3] BGR array, got shape {shape} dtype {dtype}")
    height, width = image_bgr.shape[:2]
    scale = resize_scale(height, width, min_size, max_size)
    image = image_bgr.astype(np.float32) - PIXEL_MEANS_BGR
    image = cv2.resize(image, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), scale  # [3, h, w]


class BUTDDetector(nn.Module):
    def __init__(self, cfg: FeaturesConfig):  # the detector reads the network keys (depth .. top_attrs)
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNetC4(cfg.depth)
        self.proposal_generator = RPN(cfg.pre_nms_topk, cfg.rpn_nms, cfg.post_nms_topk)
        self.roi_heads = Res5ROIHeads(cfg.res5_halve)
        self.weights_sha256: str | None = None  # set by build_detector / weights.load_weights

    @torch.no_grad()
    def forward(self, images: torch.Tensor, image_sizes: torch.Tensor, scales: torch.Tensor,
                given_boxes: list[torch.Tensor] | None = None,
                original_sizes: torch.Tensor | None = None) -> list[dict[str, torch.Tensor]]:
        """images [B, 3, H, W] preprocessed, zero-padded bottom/right; image_sizes [B, 2] (h, w) after
        resize; scales [B]; given_boxes: per image [k, 4] x1y1x2y2 in original pixels (skips the RPN);
        original_sizes [B, 2] (h, w) before resize (default: image_sizes / scales, rounded).
        Returns one dict per image; see docs/features.md for the keys."""
        B = images.shape[0]
        image_sizes = image_sizes.to(images.device).long()
        scales = scales.to(images.device, torch.float32)
        if original_sizes is None:
            original_sizes = torch.round(image_sizes.float() / scales.view(B, 1)).long()
        original_hw = [tuple(int(v) for v in hw) for hw in original_sizes.tolist()]
        if given_boxes is not None:  # checked before any compute
            given_boxes = _check_given_boxes(given_boxes, B, images.device)  # [k_i, 4] original pixels

        res4 = self.backbone(images, image_sizes)  # [B, 1024, H/16, W/16]
        if given_boxes is None:
            proposals = self.proposal_generator(res4, level_sizes(image_sizes)[16], image_sizes, scales)
        else:
            proposals = [boxes * scales[i] for i, boxes in enumerate(given_boxes)]
        counts = [p.shape[0] for p in proposals]
        rois = torch.cat([torch.cat([p.new_full((p.shape[0], 1), i), p], 1) for i, p in enumerate(proposals)])  # [R, 5]
        pool5, class_prob, deltas, attr_prob = self.roi_heads(res4, rois)

        if given_boxes is None:
            # Proposals in original pixels (BUTD's rois / im_scale): the selection runs on them and they are saved.
            original_boxes = [p / scales[i] for i, p in enumerate(proposals)]
            keep = self._select(original_boxes, class_prob, counts)
        else:
            original_boxes = given_boxes
            keep = [torch.arange(n, device=images.device) for n in counts]
        outputs, start = [], 0
        for i, n in enumerate(counts):
            rows = start + keep[i]
            boxes = original_boxes[i][keep[i]]
            regions = describe_regions(boxes, pool5[rows], class_prob[rows], deltas[rows], attr_prob[rows],
                                       original_hw[i], self.cfg.top_attrs)
            if given_boxes is not None:  # the supplied regions are the answer: no box regression
                regions["boxes"] = regions["proposal_boxes"]
            outputs.append(regions)
            start += n
        return outputs

    def _select(self, original_boxes: list[torch.Tensor], class_prob: torch.Tensor,
                counts: list[int]) -> list[torch.Tensor]:
        """Per image, the indices (into its proposals) of the kept regions. original_boxes: the proposals
        in original pixels, as BUTD's NMS sees them (with +1 areas the IoU depends on the frame)."""
        boxes = pad_sequence(original_boxes, batch_first=True)  # [B, Rmax, 4]
        probs = pad_sequence(list(class_prob[:, 1:].split(counts)), batch_first=True)  # [B, Rmax, 1600]
        valid = pad_sequence([torch.ones(n, dtype=torch.bool, device=boxes.device) for n in counts], batch_first=True)
        max_conf = max_class_confidence(boxes, probs, valid, self.cfg.class_nms)  # [B, Rmax]
        return select_regions_batched(max_conf, valid, self.cfg.conf_thresh, self.cfg.min_boxes, self.cfg.max_boxes)


def _check_given_boxes(given_boxes: list[torch.Tensor], batch: int, device) -> list[torch.Tensor]:
    if len(given_boxes) != batch:
        raise InputFormatError(f"given_boxes has {len(given_boxes)} entries for a batch of {batch} images")
    checked = []
    for i, boxes in enumerate(given_boxes):
        boxes = torch.as_tensor(boxes, dtype=torch.float32, device=device)
        if boxes.dim() != 2 or boxes.shape[1] != 4:
            raise InputFormatError(f"given_boxes[{i}] must have shape [k, 4], got {list(boxes.shape)}")
        if not bool(torch.isfinite(boxes).all()) or bool((boxes[:, 2:] < boxes[:, :2]).any()):
            raise InputFormatError(f"given_boxes[{i}] holds a non-finite box or one with x2 < x1 or y2 < y1")
        checked.append(boxes)
    return checked


def build_detector(features: FeaturesConfig, weights: str, sha256: str | None = None, seed: int = 0) -> BUTDDetector:
    """The detector of a `features:` config section, in eval mode on the CPU.
    weights: "random" (deterministic for a seed) or a path to a .pkl (public layout) / .pth file."""
    model = BUTDDetector(features)
    if weights == "random":
        init_random_weights(model, seed)
    elif weights == "download":
        raise ConfigError("features.weights is 'download': pass the downloaded file's path to build_detector")
    else:
        model.weights_sha256 = load_weights(model, weights, sha256)
    return model.eval().requires_grad_(False)


def estimate_flops(cfg: FeaturesConfig, image_hw: tuple[int, int]) -> dict:
    """Floating-point operations (2 x multiply-adds of convs and linears) for one image of
    original size image_hw, counted by torch's FlopCounterMode on a meta-device model.
    The region head is counted for post_nms_topk regions (the most the RPN passes on).
    Returns FLOPs per stage ("backbone", "rpn", "roi_heads", "total"), "resized_hw" and "regions"."""
    from torch.utils.flop_counter import FlopCounterMode

    scale = resize_scale(image_hw[0], image_hw[1], cfg.min_size, cfg.max_size)
    height, width = round(image_hw[0] * scale), round(image_hw[1] * scale)
    with torch.device("meta"):
        model = BUTDDetector(cfg)
        image = torch.empty(1, 3, height, width)
        regions = torch.empty(cfg.post_nms_topk, 1024, 14, 14)
    res4_hw = level_sizes(torch.tensor([[height, width]]))[16][0].tolist()
    stages = {
        "backbone": lambda: model.backbone(image),
        "rpn": lambda: model.proposal_generator.rpn_head(torch.empty(1, 1024, *res4_hw, device="meta")),
        "roi_heads": lambda: model.roi_heads.box_predictor(model.roi_heads.res5_pool(regions)),
    }
    counts: dict = {}
    for name, run in stages.items():
        with FlopCounterMode(display=False) as counter:
            run()
        counts[name] = float(counter.get_total_flops())
    counts["total"] = sum(counts.values())
    counts["resized_hw"] = (height, width)
    counts["regions"] = cfg.post_nms_topk
    return counts

