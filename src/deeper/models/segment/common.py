"""What the segmentation networks share: any input size, per-pixel scores, learned upsampling.

Every network of :mod:`deeper.models.segment` is a :class:`SegmentationNet`: it takes
``(N, C, H, W)`` images of any size and returns ``(N, classes, H, W)`` class scores,
one vector per pixel.  Inside, the image is padded on the right and at the bottom
with zeros (the scenes' black background) to a multiple of the network's total
stride, so every pooling halves the map exactly and every upsampling doubles it
back to the same grid; the scores are cropped back to ``H x W``.

:class:`Upsample` is a transposed convolution ("deconvolution", FCN) of stride
``s`` whose ``2s x 2s`` kernel starts as bilinear interpolation: on a map padded
by one pixel (edge values repeated) it equals
``F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)``
exactly, and training is free to change it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeper.errors import ConfigError


class SegmentationNet(nn.Module):
    """Base class: ``forward`` pads to a multiple of :attr:`stride`, calls :meth:`segment`, crops."""

    def __init__(self, *, num_classes: int, in_chans: int, stride: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a segmentation network needs at least 2 classes, got {num_classes}")
        self.num_classes, self.in_chans, self.stride = int(num_classes), int(in_chans), int(stride)

    def segment(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Scores ``(N, classes, H, W)`` of an input whose sides are multiples of :attr:`stride`."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ConfigError(
                f"{type(self).__name__} reads images of {self.in_chans} channel(s), shaped "
                f"(N, {self.in_chans}, H, W); got a tensor of shape {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h < 1 or w < 1:
            raise ConfigError(f"{type(self).__name__}: empty image ({h}x{w})")
        ph, pw = -h % self.stride, -w % self.stride
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        y = self.segment(x)
        return y[..., :h, :w] if ph or pw else y


def conv_bn_relu(cin: int, cout: int, *, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    """A 'same' convolution (no bias: the batch norm has one), batch norm, ReLU."""
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def init_conv_bn(module: nn.Module) -> None:
    """He-normal (fan-out) convolutions, zero biases, batch norm at (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def bilinear_kernel(factor: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``2 factor x 2 factor`` kernel of bilinear upsampling by ``factor`` (FCN's ``upsample_filt``)."""
    if factor < 1:
        raise ValueError(f"upsampling factor must be at least 1, got {factor}")
    size = 2 * factor
    centre = factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    f = 1 - (og - centre).abs() / factor
    return (f[:, None] * f[None, :]).to(dtype)


def bilinear_init_(deconv: nn.ConvTranspose2d) -> nn.ConvTranspose2d:
    """Set a ``C -> C`` transposed convolution of stride ``s`` and kernel ``2s`` to bilinear upsampling:
    each channel is upsampled on its own (the other channels' weights are 0); the bias, if any, is 0."""
    c_in, c_out, kh, kw = deconv.weight.shape
    s = deconv.stride[0]
    if c_in != c_out or (kh, kw) != (2 * s, 2 * s) or deconv.stride != (s, s) or deconv.groups != 1:
        raise ValueError(
            "bilinear initialisation needs a C -> C transposed convolution of kernel 2s, stride s"
        )
    with torch.no_grad():
        deconv.weight.zero_()
        k = bilinear_kernel(s, deconv.weight.dtype).to(deconv.weight.device)
        for c in range(c_in):
            deconv.weight[c, c] = k
        if deconv.bias is not None:
            deconv.bias.zero_()
    return deconv


class Upsample(nn.Module):
    """Learned upsampling by ``factor``: a ``channels -> channels`` transposed convolution (kernel
    ``2 factor``, stride ``factor``) on the map padded by one repeated edge pixel, so an ``h x w`` map
    becomes exactly ``factor h x factor w``.

    ``init="bilinear"`` (FCN): starts as bilinear interpolation (the same numbers as
    ``F.interpolate(..., mode="bilinear", align_corners=False)``); ``"random"``: PyTorch's
    default initialisation of a transposed convolution, for comparison.
    """

    def __init__(self, channels: int, factor: int, *, init: str = "bilinear"):
        super().__init__()
        if init not in ("bilinear", "random"):
            raise ValueError(f"upsampling init must be bilinear or random, got {init!r}")
        if factor < 2 or factor % 2:
            raise ValueError(f"upsampling factor must be even, got {factor}")
        self.factor = int(factor)
        self.deconv = nn.ConvTranspose2d(
            channels, channels, 2 * factor, stride=factor, padding=factor // 2 + factor, bias=False
        )
        if init == "bilinear":
            bilinear_init_(self.deconv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(F.pad(x, (1, 1, 1, 1), mode="replicate"))
