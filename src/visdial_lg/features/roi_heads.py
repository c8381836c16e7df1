"""The per-region head: RoIPool 14x14 on res4 -> res5 -> mean pool = pool5 (2048-d),
then the class, class-specific box and attribute predictors (BUTD test.prototxt).

Class layout inside this module is Caffe's: 1601 classes with background at
index 0, 1601 x 4 box deltas with weights (1, 1, 1, 1). The attribute head
embeds the arg-max class over all 1601 classes (background included), concatenates
it after pool5 and predicts 401 attributes (index 0 = no attribute).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_pool

from .backbone import make_stage

NUM_CLASSES = 1601  # 1600 Visual Genome objects + background (index 0)
NUM_ATTRIBUTES = 401  # 400 attributes + "no attribute" (index 0)
POOLER_RESOLUTION = 14
FEATURE_DIM = 2048


class BoxPredictor(nn.Module):
    def __init__(self, in_dim: int = FEATURE_DIM, num_classes: int = NUM_CLASSES,
                 num_attributes: int = NUM_ATTRIBUTES, embed_dim: int = 256, attr_hidden: int = 512):
        super().__init__()
        self.num_classes = num_classes
        self.cls_score = nn.Linear(in_dim, num_classes)
        self.bbox_pred = nn.Linear(in_dim, num_classes * 4)
        self.cls_embedding = nn.Embedding(num_classes, embed_dim)
        self.fc_attr = nn.Linear(in_dim + embed_dim, attr_hidden)
        self.attr_score = nn.Linear(attr_hidden, num_attributes)

    def forward(self, pool5: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """pool5 [R, 2048] -> class probabilities [R, 1601], deltas [R, 1601, 4], attribute probabilities [R, 401]."""
        cls_logits = self.cls_score(pool5)  # [R, 1601]
        deltas = self.bbox_pred(pool5).float().view(-1, self.num_classes, 4)  # [R, 1601, 4]
        predicted = cls_logits.argmax(dim=1)  # [R], background included, as Caffe's argmax layer
        attr_in = torch.cat([pool5, self.cls_embedding(predicted).to(pool5.dtype)], dim=1)  # [R, 2304]
        attr_logits = self.attr_score(F.relu(self.fc_attr(attr_in)))  # [R, 401]
        return cls_logits.float().softmax(dim=1), deltas, attr_logits.float().softmax(dim=1)


class Res5ROIHeads(nn.Module):
    """res5 at stride 1 with dilation 2 (BUTD), or the standard stride-2 res5 (`res5_halve`,
    detectron2's RES5HALVE: 7x7 output, a quarter of the compute, not the Caffe network)."""

    def __init__(self, res5_halve: bool = False):
        super().__init__()
        if res5_halve:
            self.res5 = make_stage(3, 1024, 512, 2048, first_stride=2, dilation=1)
        else:
            self.res5 = make_stage(3, 1024, 512, 2048, first_stride=1, dilation=2)
        self.box_predictor = BoxPredictor()

    def pool5(self, res4: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """res4 [B, 1024, h, w]; rois [R, 5] (batch index, x1, y1, x2, y2 in resized pixels) -> [R, 2048].
        All regions of the batch go through res5 together."""
        # The legacy Caffe RoIPooling: round(x / 16), inclusive ends, max per bin, empty bin = 0.
        # Its kernel has no bf16/fp16 version: pool in fp32 (max pooling loses nothing) and cast back.
        source = res4 if res4.dtype in (torch.float32, torch.float64) else res4.float()
        pooled = roi_pool(source, rois.to(source.dtype), (POOLER_RESOLUTION, POOLER_RESOLUTION), 1.0 / 16)
        pooled = pooled.to(res4.dtype)  # [R, 1024, 14, 14]
        if res4.dim() == 4 and res4.is_contiguous(memory_format=torch.channels_last) and not res4.is_contiguous():
            pooled = pooled.contiguous(memory_format=torch.channels_last)
        return self.res5_pool(pooled)

    def res5_pool(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled [R, 1024, 14, 14] -> res5 -> global mean = pool5 [R, 2048]."""
        x = pooled
        for block in self.res5:
            x = block(x)  # [R, 2048, 14, 14] (7x7 when halved)
        return x.mean(dim=(2, 3))  # [R, 2048]

    def forward(self, res4: torch.Tensor, rois: torch.Tensor):
        """-> pool5 [R, 2048] float32, class probs [R, 1601], deltas [R, 1601, 4], attribute probs [R, 401]."""
        pool5 = self.pool5(res4, rois)
        cls_prob, deltas, attr_prob = self.box_predictor(pool5)
        return pool5.float(), cls_prob, deltas, attr_prob
