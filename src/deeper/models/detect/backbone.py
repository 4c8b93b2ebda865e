"""The small convolutional backbone every detector here trains from scratch (no pretrained weights).

A VGG-like stack of 3x3 conv + batch-norm + ReLU, halving the resolution at the start of
each stage (a stride-2 convolution).  Stage ``k`` has stride ``2^k`` and
``width * (1, 2, 4, 8, 8, ...)[k-1]`` channels.  :meth:`Backbone.forward` returns the maps
at the strides asked for; ``fuse`` adds the next coarser map, upsampled and projected, to
the finest one asked for (a one-step top-down path, as in FPN): a stride-8 map that also
sees the context of the stride-16 one, the map the two-stage detectors pool from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def stage_channels(width: int, stage: int) -> int:
    """Channels of stage ``stage`` (1-based; stride ``2^stage``)."""
    return width * min(2 ** (stage - 1), 8)


class Backbone(nn.Module):
    """Feature maps at ``strides`` (powers of two, at least 2) of a (B, in_chans, H, W) batch."""

    def __init__(self, in_chans: int, width: int, strides: tuple[int, ...], *, fuse: bool = False):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be at least 1, got {width}")
        stages = []
        for s in strides:
            if s < 2 or s & (s - 1):
                raise ValueError(f"feature strides must be powers of two >= 2, got {s}")
        self.strides = tuple(sorted(strides))
        self.fuse = fuse
        deepest = max(self.strides[-1], 2 * self.strides[0] if fuse else 0)
        depth = deepest.bit_length() - 1
        cin = in_chans
        for k in range(1, depth + 1):
            cout = stage_channels(width, k)
            layers = [conv_bn(cin, cout, stride=2)]
            if k > 1:
                layers.append(conv_bn(cout, cout))
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.ModuleList(stages)
        finest = self.strides[0].bit_length() - 1
        if fuse:
            self.lateral = nn.Conv2d(stage_channels(width, finest + 1), stage_channels(width, finest), 1)
        self.channels = {s: stage_channels(width, s.bit_length() - 1) for s in self.strides}

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        out: dict[int, torch.Tensor] = {}
        keep = set(self.strides)
        finest = self.strides[0]
        coarser = None
        for k, stage in enumerate(self.stages, start=1):
            x = stage(x)
            s = 2**k
            if s in keep:
                out[s] = x
            if self.fuse and s == 2 * finest:
                coarser = x
        if self.fuse and coarser is not None:
            f = out[finest]
            out[finest] = f + F.interpolate(self.lateral(coarser), size=f.shape[-2:], mode="nearest")
        return out
