"""Dead-leaves images: synthetic training pictures with the statistics of natural ones.

The dead-leaves model (Matheron 1968; Lee, Mumford & Huang 2001) drops opaque disks of random
colour one on another until the plane is covered.  With radii drawn from a power law
(density proportional to ``r**-alpha``, ``alpha`` about 3) the picture is scale invariant and
has what a restoration network learns from photographs: flat regions, sharp occluding edges of
every orientation and curvature, and a power-law spectrum.  Achddou, Gousseau & Ladjal (2021)
trained denoisers on such images alone and came within a fraction of a dB of training on
photographs; here they are an addition to the few bundled photographs (``--task-arg
dead_leaves=N``).

Disks are drawn front to back (each covers only what no earlier disk covers) on a canvas of
twice the size, which is then averaged over 2x2 blocks: edges are antialiased, as the edges of
a photograph are, not stair steps.
"""

from __future__ import annotations

import numpy as np
import torch

from deeper.data.photos import PhotoSet
from deeper.errors import ConfigError

#: the smallest radius, in pixels of the image (the largest, unless given: a quarter of its side)
R_MIN = 1.0
#: the power law's exponent (Lee, Mumford & Huang: about 3 for natural images)
ALPHA = 3.0
#: the side of the images :func:`with_dead_leaves` adds
SIZE = 384
#: the help of the ``dead_leaves`` task option (super-resolution, restoration)
HELP = (
    f"also train on this many synthetic dead-leaves images ({SIZE} px; random disks with a power law of radii, "
    "the edges and flat regions of natural photographs: deeper.image2image.dead_leaves)"
)


def radii(rng: np.random.Generator, n: int, r_min: float, r_max: float, alpha: float = ALPHA) -> np.ndarray:
    """``n`` radii of density proportional to ``r**-alpha`` on ``[r_min, r_max]`` (inverse transform)."""
    if not 0 < r_min < r_max or alpha <= 1:
        raise ValueError(f"need 0 < r_min < r_max and alpha > 1, got {r_min}, {r_max}, {alpha}")
    a, b = r_min ** (1 - alpha), r_max ** (1 - alpha)
    return (a + rng.random(n) * (b - a)) ** (1 / (1 - alpha))


def dead_leaves(size: int, *, seed: int = 0, colour: bool = True, r_min: float = R_MIN,
                r_max: float | None = None, alpha: float = ALPHA) -> torch.Tensor:  # fmt: skip
    """One ``size`` x ``size`` dead-leaves image, uint8 ``(3 | 1, size, size)``, a function of ``seed``."""
    if size < 8:
        raise ConfigError(f"a dead-leaves image must be at least 8 pixels wide, got {size}")
    rng = np.random.default_rng(seed)
    side = 2 * size  # drawn at twice the size, then averaged: antialiased edges
    lo, hi = 2 * r_min, 2 * (r_max or size / 4)
    chans = 3 if colour else 1
    canvas = np.zeros((side, side, chans), np.float32)
    covered = np.zeros((side, side), bool)
    left = side * side
    while left:
        n = 4096
        rs = radii(rng, n, lo, hi, alpha)
        cy, cx = rng.random(n) * side, rng.random(n) * side
        colours = rng.random((n, chans)).astype(np.float32)
        for r, y, x, c in zip(rs, cy, cx, colours):
            y0, y1 = max(0, int(y - r)), min(side, int(y + r) + 1)
            x0, x1 = max(0, int(x - r)), min(side, int(x + r) + 1)
            if y0 >= y1 or x0 >= x1:
                continue
            yy, xx = np.ogrid[y0:y1, x0:x1]
            disk = (yy + 0.5 - y) ** 2 + (xx + 0.5 - x) ** 2 <= r * r
            free = covered[y0:y1, x0:x1]
            new = disk & ~free
            if new.any():
                canvas[y0:y1, x0:x1][new] = c
                free |= new
                left -= int(new.sum())
                if not left:
                    break
    small = canvas.reshape(size, 2, size, 2, chans).mean((1, 3))
    return torch.from_numpy(np.round(small * 255).astype(np.uint8)).permute(2, 0, 1).contiguous()


def with_dead_leaves(photos: PhotoSet, n: int, *, seed: int = 0, size: int = SIZE) -> PhotoSet:
    """``photos`` and ``n`` dead-leaves images (colour, ``size`` pixels, named ``dead-leaves-I``) after them;
    image ``i`` is a function of ``(seed, i)`` alone, so a resumed run makes the same ones."""
    if n < 0:
        raise ConfigError(f"dead_leaves must be a number of images (0 or more), got {n}")
    extra = [dead_leaves(size, seed=seed * 100_003 + i) for i in range(n)]
    return PhotoSet(photos.name, list(photos.images) + extra,
                    list(photos.names) + [f"dead-leaves-{i}" for i in range(n)])  # fmt: skip
