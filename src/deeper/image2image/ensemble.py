"""Geometric self-ensemble: a network's output averaged over flips and quarter turns of its input.

An image-to-image network should answer a flipped or turned image with the same image flipped or
turned; a trained one nearly does, and its small departures are partly independent errors.
Averaging the outputs for the eight symmetries of the square, each turned back, removes part of
them (Timofte et al. 2016, "seven ways to improve example-based single image super resolution";
EDSR+, Lim et al. 2017) at ``n`` times the inference cost and no training.

:func:`dihedral_mean` takes the first ``n`` of :data:`TRANSFORMS` (1, 2, 4 or 8): 2 adds the
mirror image, 4 the half turn of both (neither swaps height and width), 8 the quarter turns.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: (quarter turns, mirrored) of each symmetry, in the order :func:`dihedral_mean` takes them
TRANSFORMS: tuple[tuple[int, bool], ...] = (
    (0, False), (0, True), (2, False), (2, True), (1, False), (1, True), (3, False), (3, True),
)  # fmt: skip
#: the counts of symmetries an ensemble may take
SIZES = (1, 2, 4, 8)
#: the help of the ``self_ensemble`` task option (super-resolution, restoration)
HELP = (
    "average the network's outputs over this many flips and quarter turns of each held-out input, each turned "
    "back (geometric self-ensemble, EDSR+): 1 (off), 2, 4 or 8; N times the inference time of the test score "
    "and of predict; the single output is scored beside it as single_psnr"
)


def apply(x: torch.Tensor, turns: int, mirror: bool) -> torch.Tensor:
    """``x`` (..., H, W) mirrored left-right, then turned ``turns`` quarter turns."""
    if mirror:
        x = x.flip(-1)
    return torch.rot90(x, turns, (-2, -1)) if turns else x


def undo(x: torch.Tensor, turns: int, mirror: bool) -> torch.Tensor:
    """The inverse of :func:`apply`."""
    if turns:
        x = torch.rot90(x, -turns, (-2, -1))
    return x.flip(-1) if mirror else x


def dihedral_mean(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor | None, n: int = 8) -> torch.Tensor:
    """The mean over the first ``n`` symmetries of ``undo(fn(*transformed inputs))``; ``None`` inputs
    (an absent mask) pass through as ``None``; ``n`` 1 is ``fn(*inputs)``."""
    if n not in SIZES:
        raise ValueError(
            f"a self-ensemble takes {', '.join(map(str, SIZES[:-1]))} or {SIZES[-1]} symmetries, not {n}"
        )
    if n == 1:
        return fn(*inputs)
    total = None
    for turns, mirror in TRANSFORMS[:n]:
        args = [apply(x, turns, mirror) if x is not None else None for x in inputs]
        out = undo(fn(*args), turns, mirror).float()
        total = out if total is None else total + out
    return total / n
