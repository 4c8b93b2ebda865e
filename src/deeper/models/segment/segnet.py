"""SegNet (Badrinarayanan, Kendall & Cipolla, 2017): an encoder-decoder that upsamples by max-unpooling.

The encoder is VGG-16's thirteen 3x3 convolutions (2-2-3-3-3 per stage) with batch
norm, each stage ending in a 2x2 max-pool that *remembers where each maximum was*
(``return_indices``).  The decoder mirrors it: each stage first max-unpools with the
indices of its encoder stage (every value goes back to the position its maximum came
from, the other three positions of the 2x2 window are 0: no learned upsampling),
then densifies the sparse map with 3x3 convolutions; the last convolution of a
decoder stage narrows to the next stage's width.  A 3x3 convolution to the classes
ends it (paper: a softmax classifier on the decoder's last map).

Sized for 64x84 digit scenes: the stage widths are ``width`` x (1, 2, 4, 8, 8)
(paper: 64 x ...), trained from scratch; inputs are padded to a multiple of 32.
``stages`` keeps the first few of VGG-16's five stages (the decoder mirrors them): after
five 2x2 pools a 64x84 scene is a 2x3 map whose cells are 32 pixels apart, wider than a
digit, and every class must come back through it (SegNet has no skips but the indices);
with four (VGG-16's first ten convolutions, SegNet-Basic's depth) cells are 16 pixels apart.

``segnet-basic`` is the paper's smaller SegNet-Basic: four stages of one 7x7 convolution
each, all ``width`` wide (paper: 64), batch norm and ReLU in the encoder, batch norm and
no ReLU in the decoder, a 1x1 convolution to the classes; inputs padded to a multiple of 16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeper.models.registry import register_model
from deeper.models.segment.common import SegmentationNet, conv_bn_relu, init_conv_bn

#: convolutions per stage (VGG-16's encoder)
CONVS = (2, 2, 3, 3, 3)


def _conv_bn(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout))


class SegNet(SegmentationNet):
    """``convs`` convolutions per stage, ``multipliers`` of ``width`` per stage; ``basic``: SegNet-Basic's
    7x7 convolutions, no ReLU in the decoder and a 1x1 classifier."""

    def __init__(self, *, num_classes: int = 11, in_chans: int = 1, width: int = 16, convs: tuple = CONVS,
                 multipliers: tuple = (1, 2, 4, 8, 8), basic: bool = False):  # fmt: skip
        if width < 1:
            raise ValueError(f"SegNet width must be positive, got {width}")
        super().__init__(num_classes=num_classes, in_chans=in_chans, stride=2 ** len(convs))
        widths = [width * m for m in multipliers]
        kernel = 7 if basic else 3

        def enc(cin, cout):
            return conv_bn_relu(cin, cout, kernel=kernel)

        def dec(cin, cout):
            return _conv_bn(cin, cout, kernel) if basic else conv_bn_relu(cin, cout, kernel=kernel)

        self.encoder = nn.ModuleList()
        cin = in_chans
        for n, w in zip(convs, widths):
            self.encoder.append(nn.Sequential(*(enc(cin if i == 0 else w, w) for i in range(n))))
            cin = w
        self.decoder = nn.ModuleList()
        for s in reversed(range(len(convs))):
            n, w = convs[s], widths[s]
            out = widths[s - 1] if s > 0 else widths[0]
            self.decoder.append(nn.Sequential(*(dec(w, out if i == n - 1 else w) for i in range(n))))
        self.score = nn.Conv2d(widths[0], num_classes, 1 if basic else 3, padding=0 if basic else 1)
        init_conv_bn(self)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        indices, sizes = [], []
        for stage in self.encoder:
            x = stage(x)
            sizes.append(x.shape[-2:])
            x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
            indices.append(idx)
        for stage in self.decoder:
            x = F.max_unpool2d(x, indices.pop(), 2, 2, output_size=sizes.pop())
            x = stage(x)
        return self.score(x)


@register_model("segnet", default_input=(1, 64, 84), family="segment")
def segnet(*, num_classes: int = 11, in_chans: int = 1, width: int = 16, stages: int = 5) -> SegNet:
    """SegNet: VGG-16 encoder (13 convs, batch norm), a mirrored decoder upsampling by max-unpooling
    (``stages``: the first 1-5 of VGG-16's five stages)."""
    if not 1 <= stages <= len(CONVS):
        raise ValueError(f"SegNet stages must be 1 to {len(CONVS)}, got {stages}")
    return SegNet(num_classes=num_classes, in_chans=in_chans, width=width, convs=CONVS[:stages],
                  multipliers=(1, 2, 4, 8, 8)[:stages])  # fmt: skip


@register_model("segnet-basic", default_input=(1, 64, 84), family="segment")
def segnet_basic(*, num_classes: int = 11, in_chans: int = 1, width: int = 32) -> SegNet:
    """SegNet-Basic: four 7x7 convolutions (batch norm) down and four up by max-unpooling, a 1x1 classifier."""
    return SegNet(num_classes=num_classes, in_chans=in_chans, width=width, convs=(1, 1, 1, 1),
                  multipliers=(1, 1, 1, 1), basic=True)  # fmt: skip
