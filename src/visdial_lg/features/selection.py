"""Which regions of an image are kept, and what is saved for them (BUTD
`generate_tsv.py:get_detections_from_im`, as LTMI runs it).

1. For every object class c (background excluded): greedy NMS (+1 IoU, threshold
   `class_nms`) over the proposals in original-image pixels (BUTD's rois / im_scale;
   +1 IoU depends on the frame) ranked by P(c), equal scores in increasing proposal
   index; a proposal's `max_conf` is its highest P(c) over the classes where it survives.
2. Keep proposals with max_conf >= conf_thresh; fewer than min_boxes -> the top
   min_boxes by max_conf; more than max_boxes -> the top max_boxes.
3. Features and `proposal_boxes` are the proposals'; the class is the arg-max
   object class, `boxes` its class-specific regression (decoded in original pixels).

Step 1 runs the 1600 NMS problems at once: all classes share the proposal boxes,
hence one [R, R] overlap matrix, stored as bit sets; a scan over ranks t = 0..R-1
decides, for every class in parallel, whether the proposal at rank t is already
suppressed, and if kept, ORs its overlap bits into its class's suppressed set.
(torchvision's batched_nms would see R x 1600 boxes and fall back to a Python
loop over classes.)
"""

from __future__ import annotations

import torch

from .anchors import clip_boxes, decode_boxes, pairwise_iou


BITS = 32  # flags per int64 word


def _pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """[..., R] bool -> [..., ceil(R / 32)] int64 holding 32 flags per word (the sign bit stays unused)."""
    R = mask.shape[-1]
    words = (R + BITS - 1) // BITS
    padded = torch.nn.functional.pad(mask, (0, words * BITS - R)).view(*mask.shape[:-1], words, BITS)
    powers = torch.bitwise_left_shift(torch.ones(BITS, dtype=torch.int64, device=mask.device),
                                      torch.arange(BITS, device=mask.device))
    return (padded.long() * powers).sum(-1)



def max_class_confidence(boxes: torch.Tensor, class_prob: torch.Tensor, valid: torch.Tensor,
                         iou_threshold: float) -> torch.Tensor:
    """boxes [B, R, 4] (original pixels, as BUTD); class_prob [B, R, C] object classes only;
    valid [B, R] (False = padding). Equal scores rank by increasing index.
    Returns max_conf [B, R] (0 for padding, and for a box suppressed in every class)."""
    B, R, C = class_prob.shape
    device = boxes.device
    # Padding ranks after every real proposal (probabilities are >= 0), so it never suppresses one.
    ranked_prob = class_prob.float().masked_fill(~valid.unsqueeze(-1), -1.0).transpose(1, 2).contiguous()  # [B, C, R]
    order = ranked_prob.argsort(dim=-1, descending=True, stable=True)  # [B, C, R] proposal at rank t
    overlap = _pack_bits(pairwise_iou(boxes, boxes) > iou_threshold)  # [B, R, W] bit j: IoU(i, j) > thr
    # Everything the scan needs per rank, gathered up front so that each step is a handful of kernels.
    word = order // BITS  # [B, C, R] word of the proposal at rank t
    flag = torch.bitwise_left_shift(torch.ones_like(order), order % BITS)  # [B, C, R] its bit
    overlap_ranked = overlap[torch.arange(B, device=device).view(B, 1, 1), order]  # [B, C, R, W]
    suppressed = torch.zeros(B, C, overlap.shape[-1], dtype=torch.int64, device=device)  # [B, C, W]
    kept_at_rank = torch.empty(B, C, R, dtype=torch.bool, device=device)  # [B, C, R]
    for t in range(R):
        hit = suppressed.gather(2, word[:, :, t : t + 1]).squeeze(2).bitwise_and_(flag[:, :, t])  # [B, C]
        keep = torch.eq(hit, 0, out=kept_at_rank[:, :, t])  # [B, C]
        # A kept proposal suppresses, in its class, every proposal it overlaps.
        suppressed.bitwise_or_(overlap_ranked[:, :, t] * keep.unsqueeze(-1))
    survives = torch.zeros(B, C, R, dtype=torch.bool, device=device).scatter_(2, order, kept_at_rank)
    survives = survives.transpose(1, 2) & valid.unsqueeze(-1)  # [B, R, C]
    return torch.where(survives, class_prob.float(), 0.0).amax(dim=-1)


def select_regions(max_conf: torch.Tensor, conf_thresh: float, min_boxes: int, max_boxes: int) -> torch.Tensor:
    """Indices of the kept proposals of one image (max_conf [R]), in BUTD's order: proposal
    order when the threshold alone decides, otherwise by decreasing max_conf."""
    everything = torch.ones(1, max_conf.shape[0], dtype=torch.bool, device=max_conf.device)
    return select_regions_batched(max_conf[None], everything, conf_thresh, min_boxes, max_boxes)[0]


def select_regions_batched(max_conf: torch.Tensor, valid: torch.Tensor, conf_thresh: float, min_boxes: int,
                           max_boxes: int) -> list[torch.Tensor]:
    """`select_regions` of every image of a batch: max_conf, valid [B, R] (False = padding).
    The kept proposals pass conf_thresh, in proposal order, when there are min_boxes..max_boxes
    of them; otherwise the top min_boxes (or all there are), resp. max_boxes, by decreasing
    max_conf, equal ones in proposal order. Computed for the whole batch, with one wait for the
    device (the per-image counts) instead of one per image."""
    B, R = max_conf.shape
    above = (max_conf >= conf_thresh) & valid  # [B, R]
    n_above, n_valid = above.sum(1), valid.sum(1)  # [B]
    position = torch.arange(R, device=max_conf.device).expand(B, R)
    in_order = torch.where(above, position, position + R).argsort(dim=1)  # [B, R] those above first, in order
    ranked = max_conf.masked_fill(~valid, -torch.inf).argsort(dim=1, descending=True, stable=True)  # [B, R]
    by_threshold = (n_above >= min_boxes) & (n_above <= max_boxes)  # [B]
    count = torch.where(by_threshold, n_above,
                        torch.where(n_above < min_boxes, n_valid.clamp(max=min_boxes), torch.full_like(n_above, max_boxes)))
    order = torch.where(by_threshold.unsqueeze(1), in_order, ranked)  # [B, R]
    return [order[i, :k] for i, k in enumerate(count.tolist())]  # the batch's one host synchronisation


def describe_regions(boxes: torch.Tensor, pool5: torch.Tensor, class_prob: torch.Tensor, deltas: torch.Tensor,
                     attr_prob: torch.Tensor, original_hw: tuple[int, int], top_attrs: int) -> dict[str, torch.Tensor]:
    """Outputs for K chosen regions of one image. boxes [K, 4] the regions in original pixels;
    pool5 [K, 2048]; class_prob [K, 1601]; deltas [K, 1601, 4]; attr_prob [K, 401]."""
    boxes = boxes.float()
    cls_scores, cls_indices = class_prob[:, 1:].max(dim=1)  # [K], 0-based over the 1600 objects
    best_deltas = deltas.gather(1, (cls_indices + 1).view(-1, 1, 1).expand(-1, 1, 4)).squeeze(1)  # [K, 4]
    refined = clip_boxes(decode_boxes(boxes, best_deltas), original_hw[0], original_hw[1])  # [K, 4]
    attr_scores, attr_indices = attr_prob[:, 1:].topk(min(top_attrs, attr_prob.shape[1] - 1), dim=1)  # [K, A]
    return {
        "proposal_boxes": boxes,
        "boxes": refined,
        "features": pool5.float(),
        "cls_indices": cls_indices.long(),
        "cls_scores": cls_scores.float(),
        "attr_indices": attr_indices.long(),
        "attr_scores": attr_scores.float(),
    }
