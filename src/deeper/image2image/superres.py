"""Super-resolution as the papers score it, and colour images upscaled by a luminance network.

:func:`sr_inputs` makes, from high-resolution images (cropped to a multiple of the scale), the
low-resolution image (bicubic shrink, 8 bits) and the bicubic baseline; :func:`super_resolve`
runs a network on one or the other as it reads.  :func:`upscale_colour` upscales a colour
image with a network of the luminance: Y from the network, Cb and Cr by bicubic
interpolation (as SRCNN's and ESPCN's colour figures are made).
"""

from __future__ import annotations

import torch
from torch import nn

from deeper.image2image.ensemble import dihedral_mean
from deeper.image2image.images import downscale, quantize, rgb_to_ycbcr, upscale, ycbcr_to_rgb


def sr_inputs(hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low resolution, bicubic baseline)`` of ``hr`` (N, C, H, W), sides multiples of ``scale``."""
    lr = downscale(hr, scale)
    return lr, upscale(lr, scale)


def super_resolve(net: nn.Module, lr: torch.Tensor, bicubic: torch.Tensor | None, scale: int, *,
                  upsampled_input: bool, ensemble: int = 1) -> torch.Tensor:  # fmt: skip
    """The network's image of ``lr``, from ``lr`` itself or its bicubic enlargement (SRCNN); ``ensemble``
    > 1: averaged over that many flips and turns of the input (:func:`~deeper.image2image.ensemble.dihedral_mean`)."""
    if upsampled_input:
        bicubic = bicubic if bicubic is not None else upscale(lr, scale)
        return dihedral_mean(net, bicubic, n=ensemble)
    return dihedral_mean(net, lr, n=ensemble)


@torch.inference_mode()
def upscale_colour(net: nn.Module, lr: torch.Tensor, scale: int, *, upsampled_input: bool,
                   ensemble: int = 1) -> torch.Tensor:  # fmt: skip
    """A colour (or grey) image (1, 1|3, h, w) in [0, 1] upscaled ``scale`` times, quantized to 8 bits
    (``ensemble``: as :func:`super_resolve`)."""
    p = next(net.parameters())
    lr = lr.to(p.device, p.dtype)
    if lr.shape[1] == 1:
        y = rgb_to_ycbcr(lr)[:, :1]
        out_y = super_resolve(net, y, None, scale, upsampled_input=upsampled_input, ensemble=ensemble)
        grey = ycbcr_to_rgb(torch.cat([out_y, torch.full_like(out_y, 128 / 255).expand(-1, 2, -1, -1)], 1))
        return quantize(grey[:, :1])
    ycc = rgb_to_ycbcr(lr)
    up = upscale(ycc, scale)
    out_y = super_resolve(
        net, ycc[:, :1], up[:, :1], scale, upsampled_input=upsampled_input, ensemble=ensemble
    )
    return quantize(ycbcr_to_rgb(torch.cat([out_y, up[:, 1:]], 1)))


def bicubic_colour(lr: torch.Tensor, scale: int) -> torch.Tensor:
    return quantize(upscale(lr, scale))
