"""U-Net (Ronneberger, Fischer & Brox, 2015): a contracting and an expanding path joined by skips.

The contracting path repeats two 3x3 convolutions and a 2x2 max-pool, doubling the
channels at every level; the expanding path repeats a 2x2 up-convolution (a
transposed convolution of stride 2 that halves the channels), a concatenation with
the contracting path's map of the same size (the skip), and two 3x3
convolutions; a 1x1 convolution gives the class scores.

Sized for 64x84 digit scenes: ``depth`` 4 poolings as in the paper, but ``width``
channels at the first level (paper: 64) so 16-32-64-128 and a bottleneck of 256;
the convolutions are padded ("same") so the output has the input's size and the
skips need no cropping (paper: unpadded, with crops and an overlap-tile input), and
each is followed by batch norm.  Inputs are padded to a multiple of ``2**depth``.
"""

from __future__ import annotations

import torch
from torch import nn

from deeper.models.registry import register_model
from deeper.models.segment.common import SegmentationNet, conv_bn_relu, init_conv_bn


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class UNet(SegmentationNet):
    def __init__(self, *, num_classes: int = 11, in_chans: int = 1, width: int = 16, depth: int = 4):
        if depth < 1 or width < 1:
            raise ValueError(f"U-Net depth and width must be positive, got {depth} and {width}")
        super().__init__(num_classes=num_classes, in_chans=in_chans, stride=2**depth)
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([double_conv(in_chans, chans[0])])
        self.down.extend(double_conv(chans[i], chans[i + 1]) for i in range(depth))
        self.pool = nn.MaxPool2d(2, 2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(depth))
        self.merge = nn.ModuleList(double_conv(2 * chans[i], chans[i]) for i in range(depth))
        self.score = nn.Conv2d(chans[0], num_classes, 1)
        init_conv_bn(self)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()  # the bottleneck
        for i in reversed(range(len(self.up))):
            x = self.merge[i](torch.cat([skips.pop(), self.up[i](x)], 1))
        return self.score(x)


@register_model("unet", default_input=(1, 64, 84), family="segment")
def unet(*, num_classes: int = 11, in_chans: int = 1, width: int = 16, depth: int = 4) -> UNet:
    """U-Net: 4 poolings, 16-32-64-128-256 channels, concatenated skips, 2x2 up-convolutions."""
    return UNet(num_classes=num_classes, in_chans=in_chans, width=width, depth=depth)
