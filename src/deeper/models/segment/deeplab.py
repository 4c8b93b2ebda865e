"""DeepLab v3 (Chen, Papandreou, Schroff & Adam, 2017): atrous convolutions and atrous spatial pyramid pooling.

A residual network keeps its resolution after ``output_stride``: the later stages
trade their stride for dilation (atrous convolution), so the receptive field grows
as in the strided network while the map stays at 1/``output_stride`` of the
image.  The last stage uses the "multi-grid" rates (1, 2, 4) times its dilation.
On top sits ASPP: a 1x1 convolution, three 3x3 convolutions at atrous ``rates`` and
image-level features (global average pooling, a 1x1 convolution, spread back over
the map), each with batch norm, concatenated and fused by a 1x1 convolution; a 1x1
convolution scores the classes, and the scores are upsampled bilinearly to the
image (v3 has no decoder; that came with v3+).

``deeplabv3plus`` (Chen et al., 2018, "v3+") adds v3+'s decoder: the ASPP map,
upsampled bilinearly to the first stage's map, is concatenated with that map
(narrowed by a 1x1 convolution; v3+: 48 channels of ResNet's stride-4 features,
here ``width / 2`` channels of the stride-2 map, as these scenes' strokes are 2-4
pixels wide) and refined by two 3x3 convolutions of ``decoder`` channels (v3+: 256)
before the class scores, which are upsampled 2x.  Its defaults are narrower than
``deeplabv3``'s (``width`` 24, ``aspp`` 96, ``decoder`` 48) so that the decoder's
work at stride 2 keeps it at about 330 M multiply-accumulates per scene, less than
``deeplabv3``'s 417 M.

Sized for 64x84 digit scenes: a ResNet of four stages of two basic blocks
(ResNet-18's layout) with ``width`` x (1, 2, 4, 8) channels (ResNet-18: 64 x ...), a
3x3 stem of stride 2 and no max-pool; ``output_stride`` 8 (paper: 16 in training,
8 at evaluation) leaves an 8x11 map, so the ASPP rates are (2, 4, 6) (paper: 6,
12, 18 on 33x33 maps: roughly the same fractions of the map) and ASPP has
``aspp`` channels (paper: 256).  Inputs are padded to a multiple of ``output_stride``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeper.models.registry import register_model
from deeper.models.segment.common import SegmentationNet, conv_bn_relu, init_conv_bn

MULTI_GRID = (1, 2, 4)


class BasicBlock(nn.Module):
    """ResNet's two 3x3 convolutions with a shortcut; ``stride`` or ``dilation`` (atrous) on the first."""

    def __init__(
        self, cin: int, cout: int, *, stride: int = 1, dilation: int = 1, dilation2: int | None = None
    ):
        super().__init__()
        d2 = dilation if dilation2 is None else dilation2
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=d2, dilation=d2, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x), inplace=True)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three atrous 3x3 and an image-level branch, fused by a 1x1."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, cout, kernel=1)] + [conv_bn_relu(cin, cout, dilation=r) for r in rates]
        )
        self.image = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )
        self.project = conv_bn_relu(cout * (len(rates) + 2), cout, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1))


class DeepLabV3(SegmentationNet):
    def __init__(
        self, *, num_classes: int = 11, in_chans: int = 1, width: int = 32, output_stride: int = 8,
        aspp: int = 128, rates: tuple[int, ...] = (2, 4, 6), decoder: int = 0,
    ):  # fmt: skip
        if output_stride not in (4, 8, 16):
            raise ValueError(f"DeepLab output_stride must be 4, 8 or 16, got {output_stride}")
        if width < 1 or aspp < 1 or not rates or min(rates) < 1:
            raise ValueError("DeepLab width, aspp and rates must be positive")
        super().__init__(num_classes=num_classes, in_chans=in_chans, stride=output_stride)
        widths = [width * m for m in (1, 2, 4, 8)]
        self.stem = nn.Sequential(  # a 3x3 convolution of stride 2 (ResNet: 7x7 stride 2 and a max-pool)
            nn.Conv2d(in_chans, widths[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stride, dilation, stages, cin = 2, 1, [], widths[0]
        for i, w in enumerate(widths):
            step = 1 if i == 0 else 2
            if stride * step > output_stride:  # atrous from here on: dilate instead of striding
                dilation, step = dilation * step, 1
            stride *= step
            grid = MULTI_GRID if i == len(widths) - 1 else (1, 1, 1)
            stages.append(
                nn.Sequential(
                    BasicBlock(
                        cin, w, stride=step, dilation=dilation * grid[0], dilation2=dilation * grid[1]
                    ),
                    BasicBlock(w, w, dilation=dilation * grid[2]),
                )
            )
            cin = w
        self.stages = nn.Sequential(*stages)
        self.aspp = ASPP(cin, aspp, tuple(int(r) for r in rates))
        if decoder < 0:
            raise ValueError(f"DeepLab decoder width must be >= 0 (0: none, v3), got {decoder}")
        self.decoder = int(decoder)
        head = aspp
        if decoder:  # v3+: refine the ASPP map with the first stage's features (stride 2)
            low = max(8, widths[0] // 2)
            self.reduce = conv_bn_relu(widths[0], low, kernel=1)
            self.refine = nn.Sequential(conv_bn_relu(aspp + low, decoder), conv_bn_relu(decoder, decoder))
            head = decoder
        self.score = nn.Conv2d(head, num_classes, 1)
        init_conv_bn(self)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        low = self.stages[0](self.stem(x))
        y = self.aspp(self.stages[1:](low))
        if self.decoder:
            y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
            y = self.refine(torch.cat([self.reduce(low), y], 1))
        return F.interpolate(self.score(y), size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_model("deeplabv3", default_input=(1, 64, 84), family="segment")
def deeplabv3(
    *, num_classes: int = 11, in_chans: int = 1, width: int = 32, output_stride: int = 8, aspp: int = 128,
    rates: tuple[int, ...] = (2, 4, 6),
) -> DeepLabV3:  # fmt: skip
    """DeepLab v3: a dilated ResNet-18-style backbone (output stride 8), ASPP (rates 2, 4, 6, image pooling)."""
    return DeepLabV3(
        num_classes=num_classes, in_chans=in_chans, width=width, output_stride=output_stride, aspp=aspp,
        rates=tuple(rates),
    )  # fmt: skip


@register_model("deeplabv3plus", default_input=(1, 64, 84), family="segment")
def deeplabv3plus(
    *, num_classes: int = 11, in_chans: int = 1, width: int = 24, output_stride: int = 8, aspp: int = 96,
    rates: tuple[int, ...] = (2, 4, 6), decoder: int = 48,
) -> DeepLabV3:  # fmt: skip
    """DeepLab v3+: a narrower deeplabv3 (24-192 channels, ASPP 96) with a decoder refining at stride 2."""
    if decoder < 1:
        raise ValueError(f"DeepLab v3+ needs a decoder width of at least 1, got {decoder}")
    return DeepLabV3(
        num_classes=num_classes, in_chans=in_chans, width=width, output_stride=output_stride, aspp=aspp,
        rates=tuple(rates), decoder=decoder,
    )  # fmt: skip
