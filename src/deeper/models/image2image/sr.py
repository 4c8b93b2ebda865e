"""Super-resolution networks: SRCNN, ESPCN, SRResNet, and SRGAN's discriminator.

Every super-resolution network has a :attr:`scale` and says whether it reads the low-resolution
image itself (ESPCN, SRResNet: they upscale inside, with sub-pixel convolutions) or the image
already upscaled by bicubic interpolation (SRCNN: :attr:`upsampled_input`).  They read and
write images in [0, 1] with ``in_chans`` channels (the luminance Y: one).

- **SRCNN** (Dong, Loy, He & Tang 2014): three convolutions, 9x9 patch extraction into
  ``n1`` maps, 1x1 non-linear mapping into ``n2``, 5x5 reconstruction (the paper's 9-1-5,
  64/32), on the bicubic-upsampled image.  Padded ("same") so the output has the input's size.
- **ESPCN** (Shi et al. 2016): 5x5 (64) and 3x3 (32) convolutions with tanh on the
  low-resolution image, a 3x3 convolution into ``C * scale**2`` maps and a pixel shuffle
  (sub-pixel convolution) that rearranges them into the ``scale``-times larger image.
- **SRResNet** (Ledig et al. 2017): a 9x9 convolution and PReLU, ``blocks`` residual blocks
  (conv-BN-PReLU-conv-BN), a convolution and BN with a skip over all blocks, then one
  (x2, x3) or two (x4) sub-pixel upsampling stages (conv, pixel shuffle, PReLU) and a 9x9
  convolution.  The paper's 16 blocks of 64 channels are the defaults; ``bn=False`` drops the
  batch norm (as EDSR), ``residual=True`` adds the bicubic enlargement of the input to the
  output (the network starts as bicubic and learns its correction).
- **Discriminator** (SRGAN): eight 3x3 convolutions (``w``, ``w`` stride 2, ``2w``, ``2w`` s2,
  ``4w``, ``4w`` s2, ``8w``, ``8w`` s2) with batch norm and leaky ReLU, then (global average
  pooling here, so any patch size fits) a dense ``16w`` layer and one logit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deeper.models.registry import register_model

SCALES = (2, 3, 4, 8)


def _check_scale(scale: int, allowed=SCALES) -> int:
    if scale not in allowed:
        raise ValueError(f"scale must be one of {', '.join(map(str, allowed))}, got {scale}")
    return int(scale)


class SuperResolution(nn.Module):
    """Base of the super-resolution networks: :attr:`scale`, :attr:`upsampled_input`, a channel check."""

    upsampled_input = False

    def __init__(self, in_chans: int, scale: int):
        super().__init__()
        self.in_chans, self.scale = int(in_chans), int(scale)

    def check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"{type(self).__name__} reads images of {self.in_chans} channel(s), shaped "
                f"(N, {self.in_chans}, H, W); got a tensor of shape {tuple(x.shape)}"
            )


class SRCNN(SuperResolution):
    upsampled_input = True

    def __init__(self, *, in_chans: int = 1, scale: int = 2, f1: int = 9, f2: int = 1, f3: int = 5,
                 n1: int = 64, n2: int = 32, residual: bool = False):  # fmt: skip
        super().__init__(in_chans, scale)
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, n1, f1, padding=f1 // 2, padding_mode="replicate"),
            nn.ReLU(inplace=True),
            nn.Conv2d(n1, n2, f2, padding=f2 // 2, padding_mode="replicate"),
            nn.ReLU(inplace=True),
            nn.Conv2d(n2, in_chans, f3, padding=f3 // 2, padding_mode="replicate"),
        )
        if residual:  # the network learns the correction of bicubic: start from none
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        y = self.body(x)
        return x + y if self.residual else y


class ESPCN(SuperResolution):
    def __init__(
        self, *, in_chans: int = 1, scale: int = 3, n1: int = 64, n2: int = 32, residual: bool = False
    ):
        super().__init__(in_chans, _check_scale(scale))
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, n1, 5, padding=2, padding_mode="replicate"),
            nn.Tanh(),
            nn.Conv2d(n1, n2, 3, padding=1, padding_mode="replicate"),
            nn.Tanh(),
            nn.Conv2d(n2, in_chans * scale**2, 3, padding=1, padding_mode="replicate"),
        )
        self.shuffle = nn.PixelShuffle(scale)
        if residual:  # the network learns the correction of bicubic: start from none
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        y = self.shuffle(self.body(x))
        return y + upscale_bicubic(x, self.scale) if self.residual else y


class ResidualBlock(nn.Module):
    def __init__(self, width: int, bn: bool):
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(width)) if bn else nn.Identity
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=not bn), norm(), nn.PReLU(width),
            nn.Conv2d(width, width, 3, padding=1, bias=not bn), norm(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def upsampler(width: int, scale: int) -> nn.Sequential:
    """Sub-pixel upsampling by ``scale``: x2 stages (x3 in one), each conv -> pixel shuffle -> PReLU."""
    stages = [3] if scale == 3 else [2] * int(math.log2(scale))
    layers: list[nn.Module] = []
    for r in stages:
        layers += [nn.Conv2d(width, width * r * r, 3, padding=1), nn.PixelShuffle(r), nn.PReLU(width)]
    return nn.Sequential(*layers)


class SRResNet(SuperResolution):
    def __init__(self, *, in_chans: int = 1, scale: int = 4, blocks: int = 16, width: int = 64, bn: bool = True,
                 residual: bool = False):  # fmt: skip
        super().__init__(in_chans, _check_scale(scale))
        self.residual = residual
        self.head = nn.Sequential(nn.Conv2d(in_chans, width, 9, padding=4), nn.PReLU(width))
        norm = nn.BatchNorm2d(width) if bn else nn.Identity()
        self.blocks = nn.Sequential(
            *[ResidualBlock(width, bn) for _ in range(blocks)],
            nn.Conv2d(width, width, 3, padding=1, bias=not bn), norm,
        )  # fmt: skip
        self.up = upsampler(width, scale)
        self.tail = nn.Conv2d(width, in_chans, 9, padding=4)
        if residual:  # the network learns the correction of bicubic: start from none
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        h = self.head(x)
        y = self.tail(self.up(h + self.blocks(h)))
        return y + upscale_bicubic(x, self.scale) if self.residual else y


class Discriminator(nn.Module):
    """SRGAN's discriminator: one logit per image, "is this a real high-resolution image"."""

    def __init__(self, *, in_chans: int = 1, width: int = 64):
        super().__init__()
        chans = [width, width, 2 * width, 2 * width, 4 * width, 4 * width, 8 * width, 8 * width]
        layers: list[nn.Module] = [nn.Conv2d(in_chans, width, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        for i in range(1, len(chans)):
            layers += [
                nn.Conv2d(chans[i - 1], chans[i], 3, stride=1 + i % 2, padding=1, bias=False),
                nn.BatchNorm2d(chans[i]),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(chans[-1], 16 * width, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(16 * width, 1, 1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def pixel_shuffle_reference(x: torch.Tensor, r: int) -> torch.Tensor:
    """The sub-pixel rearrangement written out: ``out[c, h r + i, w r + j] = x[c r^2 + i r + j, h, w]``."""
    n, c, h, w = x.shape
    return (
        x.reshape(n, c // (r * r), r, r, h, w)
        .permute(0, 1, 4, 2, 5, 3)
        .reshape(n, c // (r * r), h * r, w * r)
    )


def upscale_bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upscaling (Keys' kernel, a = -0.5, as MATLAB's and PIL's resize), the SR baseline."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", antialias=True, align_corners=False)


# ----------------------------------------------------------------------------- the registry


@register_model("srcnn", default_input=(1, 33, 33), family="restore")
def srcnn(*, num_classes: int = 1, in_chans: int = 1, scale: int = 2, f1: int = 9, f2: int = 1, f3: int = 5,
          n1: int = 64, n2: int = 32, residual: bool = False) -> SRCNN:  # fmt: skip
    """SRCNN 9-1-5 (64/32 maps) on the bicubic-upsampled image; ``residual`` adds the input (VDSR's skip)."""
    return SRCNN(in_chans=in_chans, scale=scale, f1=f1, f2=f2, f3=f3, n1=n1, n2=n2, residual=residual)


@register_model("espcn", default_input=(1, 17, 17), family="restore")
def espcn(*, num_classes: int = 1, in_chans: int = 1, scale: int = 3, n1: int = 64, n2: int = 32,
          residual: bool = False) -> ESPCN:  # fmt: skip
    """ESPCN: two tanh convolutions on the low-resolution image, a sub-pixel convolution (pixel shuffle)
    (``residual``: adds the bicubic enlargement of the input, as SRCNN's option)."""
    return ESPCN(in_chans=in_chans, scale=scale, n1=n1, n2=n2, residual=residual)


@register_model("srresnet", default_input=(1, 24, 24), family="restore")
def srresnet(*, num_classes: int = 1, in_chans: int = 1, scale: int = 4, blocks: int = 16, width: int = 64,
             bn: bool = True, residual: bool = False) -> SRResNet:  # fmt: skip
    """SRResNet: residual blocks (conv-BN-PReLU-conv-BN), sub-pixel upsampling; SRGAN's generator
    (``residual``: adds the bicubic enlargement of the input, as SRCNN's option)."""
    return SRResNet(in_chans=in_chans, scale=scale, blocks=blocks, width=width, bn=bn, residual=residual)
