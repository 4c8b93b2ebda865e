"""Input preprocessing layers that travel with a model's weights.

:class:`WidthNormalize` is the width normalisation of the multi-column network
(MCDNN, Ciresan, Meier & Schmidhuber 2012): every digit is stretched or squeezed
horizontally so that its ink spans the same number of pixels, and centred; its
height is left alone.  MNIST digits are already scaled to fit a 20x20 box with
their aspect ratio kept, so the widths vary from a few pixels (a ``1``) to 20.
Networks trained on differently normalised inputs see the same digit in
different ways and make different mistakes, which is what an ensemble needs.

Being a layer of the model (with no parameters), the normalisation is applied
in training, in evaluation and in every ensemble alike, and the model's options
recorded in its weights file rebuild it: nothing outside the model has to know.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WidthNormalize(nn.Module):
    """Rescale each image horizontally so its ink is ``width`` pixels wide, centred.

    The ink is the columns whose brightest pixel exceeds ``threshold`` (inputs in
    ``[0, 1]``, ink bright).  Batched: the bounding boxes come from one reduction
    and the resampling from one ``grid_sample`` (bilinear, zeros outside), with no
    per-image loop.  A blank image is returned unchanged.
    """

    def __init__(self, width: float, threshold: float = 0.1):
        super().__init__()
        if not width > 0:
            raise ValueError(f"width_norm must be a positive width in pixels, got {width}")
        self.width = float(width)
        self.threshold = float(threshold)

    def extra_repr(self) -> str:
        return f"width={self.width:g}, threshold={self.threshold:g}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # written without Python-level shapes, so torch.fx can trace it (int8 quantization)
        ink = x.detach().amax(dim=(1, 2)) > self.threshold  # (N, W)
        w = x.size(3)
        cols = torch.arange(w, device=x.device)
        first = torch.where(ink, cols, w).amin(1)
        last = torch.where(ink, cols, -1).amax(1)
        blank = ~ink.any(1)
        extent = (last - first + 1).clamp(min=1).to(x.dtype)  # ink width in pixels
        centre = (first + last + 1).to(x.dtype) / 2  # in pixel-edge units, 0 .. w
        # output column u (normalised, -1 .. 1) reads input column centre + u * extent / width
        one, zero = torch.ones_like(extent), torch.zeros_like(extent)
        scale = torch.where(blank, one, extent / self.width)
        shift = torch.where(blank, zero, 2 * centre / w - 1)
        theta = torch.stack([scale, zero, shift, zero, one, zero], 1).view(-1, 2, 3)
        grid = F.affine_grid(theta, x.size(), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


#: the preprocessing layers (kept whole and in float32 by int8 quantization)
PREPROCESSING = (WidthNormalize,)
