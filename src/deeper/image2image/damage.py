"""Damaging images, and the simple ways of repairing them a restoration network must beat.

- **noise**: additive white Gaussian noise of standard deviation ``sigma`` (in 8-bit levels,
  so ``sigma`` 25 is 25/255), not clipped (the denoising benchmarks' convention).
  Baselines: the noisy image, and a Gaussian blur whose width is the best for each image
  among 0.5, 0.75, 1, 1.5 and 2 pixels (an oracle: it knows the clean image).
- **inpaint**: random rectangles (sides between ``hole``/2 and ``hole`` pixels) cover about
  ``cover`` of the image; their pixels are lost (set to 0) and the mask is given.  Baselines:
  the damaged image, and the holes filled with the mean of the image's known pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deeper.image2image.metrics import psnr

BLUR_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0)


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    noise = (
        torch.randn(x.shape, generator=generator, dtype=x.dtype)
        if generator is not None
        else torch.randn_like(x)
    )
    return x + noise.to(x.device) * (sigma / 255.0)


def hole_mask(n: int, h: int, w: int, *, hole: int, cover: float, generator: torch.Generator | None = None,
              device=None) -> torch.Tensor:  # fmt: skip
    """(n, 1, h, w) float masks, 1 on missing pixels: rectangles until about ``cover`` of the area is drawn."""
    lo = max(1, hole // 2)
    mean_area = ((lo + hole) / 2) ** 2
    k = max(1, round(cover * h * w / mean_area))
    sides = torch.randint(lo, hole + 1, (n, k, 2), generator=generator)
    tops = (torch.rand(n, k, generator=generator) * (h - sides[..., 0] + 1).clamp(min=1)).long()
    lefts = (torch.rand(n, k, generator=generator) * (w - sides[..., 1] + 1).clamp(min=1)).long()
    mask = torch.zeros(n, 1, h, w)
    for i in range(n):
        for (sh, sw), t, lf in zip(sides[i].tolist(), tops[i].tolist(), lefts[i].tolist()):
            mask[i, 0, t : t + sh, lf : lf + sw] = 1.0
    return mask.to(device)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (radius 3 sigma, reflected borders) of (N, C, H, W)."""
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    pad_mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode=pad_mode), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode=pad_mode), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def best_blur(noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """For each image, the Gaussian blur of ``noisy`` closest to ``clean`` (PSNR) among :data:`BLUR_SIGMAS`."""
    candidates = torch.stack([gaussian_blur(noisy, s).clamp(0, 1) for s in BLUR_SIGMAS])  # (S, N, C, H, W)
    values = torch.stack([psnr(c, clean) for c in candidates])  # (S, N)
    best = values.argmax(0)
    return candidates[best, torch.arange(noisy.shape[0])]


def mean_fill(damaged: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Holes filled with the mean of each image's known pixels (per channel)."""
    known = 1 - mask
    mean = (damaged * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp(min=1)
    return damaged * known + mean * mask
