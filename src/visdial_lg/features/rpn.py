"""Region proposal network on res4 and the Caffe test-time proposal layer.

Head (test.prototxt): rpn_conv/3x3 1024 -> 512 + ReLU, then 1x1 convs to one
objectness logit per anchor and 4 deltas per anchor. Internally the logit is
Caffe's fg - bg (softmax over {bg, fg} == sigmoid(fg - bg)), anchors are in
Caffe's ratio-major order; weights.py converts other layouts to this one.

Proposal layer (BUTD's `lib/rpn/proposal_layer.py`, docs/upstream.md#butd-detector), per image:
decode with +1 box math -> clip to [0, W-1] x [0, H-1] -> drop boxes with a
side < 16 * scale -> top `pre_nms_topk` by score -> NMS (+1 IoU) -> top
`post_nms_topk`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .anchors import FEAT_STRIDE, caffe_cell_anchors, clip_boxes, decode_boxes, grid_anchors, nms

RPN_MIN_SIZE = 16  # Caffe TEST.RPN_MIN_SIZE, in pixels of the original image


class RPNHead(nn.Module):
    def __init__(self, in_channels: int = 1024, hidden: int = 512, num_anchors: int = 12):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.objectness_logits = nn.Conv2d(hidden, num_anchors, 1)
        self.anchor_deltas = nn.Conv2d(hidden, num_anchors * 4, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B, C, h, w] -> logits [B, h*w*A], deltas [B, h*w*A, 4], both in (y, x, anchor) order."""
        hidden = F.relu(self.conv(features))
        logits = self.objectness_logits(hidden)  # [B, A, h, w]
        deltas = self.anchor_deltas(hidden)  # [B, A*4, h, w]
        B, A, h, w = logits.shape
        logits = logits.permute(0, 2, 3, 1).reshape(B, h * w * A)
        deltas = deltas.view(B, A, 4, h, w).permute(0, 3, 4, 1, 2).reshape(B, h * w * A, 4)
        return logits, deltas


class RPN(nn.Module):
    def __init__(self, pre_nms_topk: int, nms_thresh: float, post_nms_topk: int, in_channels: int = 1024):
        super().__init__()
        self.pre_nms_topk, self.nms_thresh, self.post_nms_topk = pre_nms_topk, nms_thresh, post_nms_topk
        cell = caffe_cell_anchors()
        # The 12 Caffe anchors are fixed by the network, not learned: never read from a checkpoint.
        self.register_buffer("cell_anchors", cell, persistent=False)
        self.rpn_head = RPNHead(in_channels, 512, cell.shape[0])

    def forward(self, features: torch.Tensor, feature_sizes: torch.Tensor, image_sizes: torch.Tensor,
                scales: torch.Tensor) -> list[torch.Tensor]:
        """features [B, 1024, h, w] (padded); feature_sizes [B, 2] each image's valid (h, w) on
        that map; image_sizes [B, 2] resized (h, w); scales [B].
        Returns per image its proposals [R_i, 4] (resized-image pixels), by decreasing score."""
        logits, deltas = self.rpn_head(features)
        B, _, h, w = features.shape
        A = self.cell_anchors.shape[0]
        anchors = grid_anchors(self.cell_anchors, h, w, FEAT_STRIDE)  # [h*w*A, 4]
        scores = torch.sigmoid(logits.float())  # [B, N]
        boxes = decode_boxes(anchors.unsqueeze(0), deltas)  # [B, N, 4]
        image_h = image_sizes[:, 0].to(boxes).view(B, 1)
        image_w = image_sizes[:, 1].to(boxes).view(B, 1)
        boxes = clip_boxes(boxes, image_h, image_w)

        # A padded image's anchors exist only on its own valid cells, as in the unpadded Caffe blob.
        ys = torch.arange(h, device=features.device).view(1, h, 1, 1)
        xs = torch.arange(w, device=features.device).view(1, 1, w, 1)
        fs = feature_sizes.to(features.device).long()
        on_image = (ys < fs[:, 0].view(B, 1, 1, 1)) & (xs < fs[:, 1].view(B, 1, 1, 1))
        on_image = on_image.expand(B, h, w, A).reshape(B, h * w * A)
        min_side = (RPN_MIN_SIZE * scales.to(boxes)).view(B, 1)
        widths = boxes[..., 2] - boxes[..., 0] + 1
        heights = boxes[..., 3] - boxes[..., 1] + 1
        big_enough = (widths >= min_side) & (heights >= min_side)
        scores = scores.masked_fill(~(on_image & big_enough), float("-inf"))

        k = min(self.pre_nms_topk, scores.shape[1])
        top_scores, top_idx = scores.topk(k, dim=1)  # [B, k], sorted
        top_boxes = boxes.gather(1, top_idx.unsqueeze(-1).expand(B, k, 4))  # [B, k, 4]
        proposals = []
        for b in range(B):  # NMS per image (B is small; the work is inside the kernel)
            keep_b = torch.isfinite(top_scores[b])
            boxes_b, scores_b = top_boxes[b][keep_b], top_scores[b][keep_b]
            keep = nms(boxes_b, scores_b, self.nms_thresh)[: self.post_nms_topk]
            proposals.append(boxes_b[keep])
        return proposals
