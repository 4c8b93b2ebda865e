"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell, 2015): a classifier made fully convolutional.

As in the paper, the network starts as an image *classifier*, a VGG from the zoo
(:class:`deeper.models.vgg.VGG`), whose affine layers fc6, fc7 and fc8 are rewritten
as convolutions by :func:`deeper.models.convolutionalize`; fc8 (now a 1x1
convolution) scores every class at every position of pool5's map, 32 pixels apart.
Those coarse scores are upsampled back to the image by transposed convolutions
initialised to bilinear interpolation (:class:`~deeper.models.segment.common.Upsample`):

- **FCN-32s**: one 32x upsampling of the pool5 scores;
- **FCN-16s**: the pool5 scores upsampled 2x, added to scores read off pool4 by a 1x1
  convolution (stride 16), the sum upsampled 16x;
- **FCN-8s**: that sum upsampled 2x again, added to scores read off pool3 (stride 8),
  the sum upsampled 8x.

The skip scorers start at zero, as in the paper, so FCN-16s and FCN-8s begin as
FCN-32s and learn how much finer detail to add.

Sized for 64x84 digit scenes (1 grey channel, 11 classes), trained from scratch
(nothing pretrained exists here): the classifier is the VGG of 32x32 windows (the
size of a scene digit's cell): ``depth`` 16 keeps VGG-16's 2-2-3-3-3 convolutions
and five max-pools, but the stage widths are ``width`` x (1, 2, 4, 8, 8) (VGG-16:
64 x ...), each convolution is followed by batch norm (the paper fine-tuned an
ImageNet VGG; from scratch, batch norm makes it train in minutes), and fc6/fc7
have ``hidden`` units and read pool5's 1x1 map of a 32x32 window (VGG: 4096 units
on a 7x7 map), so convolutionalized they are 1x1 convolutions.  The paper fixes
its final upsampling at bilinear; here every upsampling is learned (``init``
says how it starts: ``bilinear``, or ``random`` for the comparison of
docs/segmentation.md).  Inputs are padded to a multiple of 32 (a 64x84 scene is
read as 64x96), so no crop offsets are needed.

``pool1=False`` sizes the strides for objects smaller than the paper's: a scene's
digits are 20-32 pixels with strokes of two or three, where PASCAL's objects span
a hundred pixels and more.  The first stage then keeps the full resolution (its
max-pool left out), so every later map is twice as fine: pool3 at stride 4,
pool5 at 16, and FCN-8s's fused scores are upsampled 4x instead of 8x.  The
classifier is the same (fc6 reads pool5's 1x1 map of a 16x16 window); with
``width`` halved the network costs about what the paper's strides cost at the
full width.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from deeper.models.convolutionalize import convolutionalize
from deeper.models.registry import register_model
from deeper.models.segment.common import SegmentationNet, Upsample
from deeper.models.vgg import STAGES, VGG

#: the side of the windows the backbone classifier reads (pool5 of it is 1x1)
WINDOW = 32


def window_classifier(
    *, depth: int, width: int, hidden: int, num_classes: int, in_chans: int, dropout: float
) -> VGG:
    """The zoo's VGG as a classifier of ``WINDOW x WINDOW`` windows: five pools, a 1x1 pool5 map."""
    if depth not in STAGES:
        raise ValueError(f"VGG depth must be one of {sorted(STAGES)}, got {depth}")
    if width < 1 or hidden < 1:
        raise ValueError(f"width and hidden must be positive, got {width} and {hidden}")
    widths = tuple(width * m for m in (1, 2, 4, 8, 8))
    return VGG(
        depth=depth, batch_norm=True, num_classes=num_classes, in_chans=in_chans, img_size=2 * WINDOW,
        dropout=dropout, hidden=hidden, widths=widths, pooled=1,
    )  # fmt: skip


class FCN(SegmentationNet):
    """FCN-``variant``s (32, 16 or 8) on a convolutionalized VGG window classifier."""

    def __init__(
        self, *, variant: int = 8, num_classes: int = 11, in_chans: int = 1, width: int = 16, depth: int = 16,
        hidden: int = 256, dropout: float = 0.5, init: str = "bilinear", pool1: bool = True,
    ):  # fmt: skip
        super().__init__(num_classes=num_classes, in_chans=in_chans, stride=32 if pool1 else 16)
        if variant not in (32, 16, 8):
            raise ValueError(f"FCN variant must be 32, 16 or 8, got {variant}")
        self.variant = variant
        vgg = window_classifier(
            depth=depth,
            width=width,
            hidden=hidden,
            num_classes=num_classes,
            in_chans=in_chans,
            dropout=dropout,
        )
        fcn = convolutionalize(vgg, (in_chans, WINDOW, WINDOW))  # fc6, fc7, fc8 -> 1x1 convolutions
        layers = list(fcn.body.features.named_children())
        if not pool1:  # the first stage at full resolution: every later map twice as fine
            layers = [(n, nn.Identity() if n == "pool1" else m) for n, m in layers]
        names = [n for n, _ in layers]
        cut3, cut4 = names.index("pool3") + 1, names.index("pool4") + 1
        self.to_pool3 = nn.Sequential(OrderedDict(layers[:cut3]))
        self.to_pool4 = nn.Sequential(OrderedDict(layers[cut3:cut4]))
        self.to_pool5 = nn.Sequential(OrderedDict(layers[cut4:]))
        self.classifier = fcn.head  # fc6, fc7 and the scorer fc8 ("score_fr"), as convolutions
        c3, c4 = 4 * width, 8 * width  # the widths of stages 3 and 4
        k = num_classes
        if variant <= 16:
            self.score_pool4 = _zero_scorer(c4, k)
            self.up2 = Upsample(k, 2, init=init)
        if variant == 8:
            self.score_pool3 = _zero_scorer(c3, k)
            self.up2_pool4 = Upsample(k, 2, init=init)
        self.up_final = Upsample(k, variant if pool1 else variant // 2, init=init)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        p3 = self.to_pool3(x)
        p4 = self.to_pool4(p3)
        score = self.classifier(self.to_pool5(p4))  # stride 32 (16 without pool1)
        if self.variant <= 16:
            score = self.up2(score) + self.score_pool4(p4)  # stride 16 (8)
        if self.variant == 8:
            score = self.up2_pool4(score) + self.score_pool3(p3)  # stride 8 (4)
        return self.up_final(score)


def _zero_scorer(channels: int, classes: int) -> nn.Conv2d:
    conv = nn.Conv2d(channels, classes, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _register(variant: int) -> None:
    def factory(
        *, num_classes: int = 11, in_chans: int = 1, width: int = 16, depth: int = 16, hidden: int = 256,
        dropout: float = 0.5, init: str = "bilinear", pool1: bool = True,
    ) -> FCN:  # fmt: skip
        return FCN(
            variant=variant, num_classes=num_classes, in_chans=in_chans, width=width, depth=depth,
            hidden=hidden, dropout=dropout, init=init, pool1=pool1,
        )  # fmt: skip

    how = {
        32: "pool5 scores upsampled 32x",
        16: "pool5 scores upsampled 2x plus pool4 scores, upsampled 16x",
        8: "pool5 + pool4 + pool3 scores fused at stride 8, upsampled 8x",
    }[variant]
    factory.__doc__ = (
        f"FCN-{variant}s: a convolutionalized VGG-16-style classifier (batch norm, narrow), {how} by "
        "transposed convolutions initialised to bilinear."
    )
    factory.__name__ = factory.__qualname__ = f"fcn{variant}s"
    register_model(f"fcn{variant}s", default_input=(1, 64, 84), family="segment")(factory)


for _v in (32, 16, 8):
    _register(_v)
