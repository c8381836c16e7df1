"""ResNet "C4" backbone of the BUTD network (Caffe/MSRA variant), up to res4.

Caffe specifics kept (docs/upstream.md#butd-detector): the stride of a stage sits
in the first 1x1 conv, the stem max-pool has no padding and rounds up, and
every BatchNorm is a frozen affine. Parameter names follow detectron2
(`stem.conv1`, `res4.22.conv2.norm.running_var`, ...), so converted public
weights load by name (docs/features.md has the mapping to Caffe blobs).

Batching: images of a batch are zero-padded bottom/right. The Caffe network
runs one unpadded image at a time, so values computed at padded positions must
never reach valid ones. Only spatial operators (3x3 convs, the max-pool) look
at neighbours; before each of them the padded positions are set to zero, which
is exactly the zero padding the unpadded image sees at its own border. The
max-pool input is post-ReLU (>= 0), so a zero there equals Caffe's clipped
window. Stride-2 1x1 convs sample positions 0, 2, 4, ... and never read padding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

RES4_BLOCKS = {50: 6, 101: 23}
# The input the backbone's weights expect: BGR minus Caffe's cfg.PIXEL_MEANS, no scaling.
PIXEL_MEANS_BGR = np.array([102.9801, 115.9465, 122.7717], dtype=np.float32)
FROZEN_BN_EPS = 1e-5  # detectron2 FrozenBatchNorm2d


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine (Caffe BatchNorm + Scale, use_global_stats)."""

    def __init__(self, channels: int, eps: float = FROZEN_BN_EPS):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift()
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


class ConvFrozenBN(nn.Conv2d):
    """Bias-free conv followed by a FrozenBatchNorm2d (detectron2's `Conv2d(norm=...)`).
    The frozen affine is folded into the conv weights on the fly: one conv instead of conv + affine."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False)
        self.norm = FrozenBatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.norm.scale_shift()
        weight = self.weight * scale.view(-1, 1, 1, 1)
        return F.conv2d(x, weight, shift, self.stride, self.padding, self.dilation)


def _masked(x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
    # masked_fill keeps x's dtype (bf16 under autocast) and memory format.
    return x if padding is None else x.masked_fill(padding, 0.0)


class Bottleneck(nn.Module):
    """1x1 (carries the stride) -> 3x3 (dilated in res5) -> 1x1, plus the projection shortcut."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = ConvFrozenBN(in_channels, mid_channels, 1, stride=stride)
        self.conv2 = ConvFrozenBN(mid_channels, mid_channels, 3, dilation=dilation)
        self.conv3 = ConvFrozenBN(mid_channels, out_channels, 1)
        self.shortcut = (
            ConvFrozenBN(in_channels, out_channels, 1, stride=stride)
            if in_channels != out_channels or stride != 1 else None
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mask: [B, 1, h, w] bool, True at padded output positions (None = no padding)."""
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(_masked(out, mask)))
        out = self.conv3(out)
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + identity)


def make_stage(blocks: int, in_channels: int, mid_channels: int, out_channels: int,
               first_stride: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(*[
        Bottleneck(in_channels if i == 0 else out_channels, mid_channels, out_channels,
                   stride=first_stride if i == 0 else 1, dilation=dilation)
        for i in range(blocks)
    ])


class CaffeStem(nn.Module):
    """conv1 7x7/2 + frozen BN + ReLU, then Caffe's max-pool 3x3/2 without padding, rounding up."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvFrozenBN(3, 64, 7, stride=2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(_masked(x, mask), kernel_size=3, stride=2, padding=0, ceil_mode=True)


def level_sizes(sizes: torch.Tensor) -> dict[int, torch.Tensor]:
    """Valid (h, w) of an unpadded image at each stride, from its (h, w) at stride 1.
    Follows the conv arithmetic: conv1 7x7/2 pad 3, max-pool 3x3/2 ceil, then 1x1/2 convs. [B, 2] each."""
    s2 = (sizes + 1) // 2  # floor((h + 6 - 7) / 2) + 1
    s4 = (s2 - 2) // 2 + 1  # ceil((h - 3) / 2) + 1
    s8 = (s4 + 1) // 2
    s16 = (s8 + 1) // 2
    return {2: s2, 4: s4, 8: s8, 16: s16}


def padding_mask(sizes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, 1, height, width] bool: True where (y, x) lies outside each image's valid (h, w)."""
    ys = torch.arange(height, device=sizes.device)
    xs = torch.arange(width, device=sizes.device)
    inside = (ys.view(1, -1, 1) < sizes[:, 0].view(-1, 1, 1)) & (xs.view(1, 1, -1) < sizes[:, 1].view(-1, 1, 1))
    return ~inside.unsqueeze(1)


class ResNetC4(nn.Module):
    """stem -> res2 (stride 4) -> res3 (stride 8) -> res4 (stride 16, 1024 channels)."""

    def __init__(self, depth: int = 101):
        super().__init__()
        if depth not in RES4_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(RES4_BLOCKS)}, got {depth}")
        self.stem = CaffeStem()
        self.res2 = make_stage(3, 64, 64, 256, first_stride=1)
        self.res3 = make_stage(4, 256, 128, 512, first_stride=2)
        self.res4 = make_stage(RES4_BLOCKS[depth], 512, 256, 1024, first_stride=2)

    def forward(self, images: torch.Tensor, image_sizes: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, 3, H, W] zero-padded; image_sizes [B, 2] valid (h, w), None = no padding.
        Returns res4 [B, 1024, H/16, W/16] with padded positions set to zero."""
        masks = self._masks(images, image_sizes)
        x = self.stem(images, masks[2])
        for stride, stage in ((4, self.res2), (8, self.res3), (16, self.res4)):
            for block in stage:
                x = block(x, masks[stride])
        return _masked(x, masks[16])

    @staticmethod
    def _masks(images: torch.Tensor, image_sizes: torch.Tensor | None) -> dict[int, torch.Tensor | None]:
        B, _, H, W = images.shape
        full = torch.tensor([[H, W]], dtype=torch.long)
        padded = level_sizes(full)
        if image_sizes is None or bool((image_sizes.cpu().long() == full).all()):
            return {stride: None for stride in padded}
        valid = level_sizes(image_sizes.to(images.device).long())
        return {
            stride: padding_mask(valid[stride], int(padded[stride][0, 0]), int(padded[stride][0, 1]))
            for stride in padded
        }
