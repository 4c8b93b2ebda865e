"""What every detector here is: a module taking a batch of images and answering in one of two ways.

- training mode: ``net(images, targets)`` returns a dict of named loss terms (0-dim tensors,
  summed for the step's loss); ``targets`` are torchvision-style dicts (``boxes`` pixel
  xyxy, ``labels`` 0-based), one per image;
- eval mode: ``net(images)`` returns one dict per image: ``boxes`` (n, 4) pixel xyxy in the
  input's coordinates, ``scores`` (n,), ``labels`` (n,) 0-based.

Models built on region proposals (R-CNN, SPPNet, Fast R-CNN) also take ``proposals`` (one
(K, 4) tensor per image); without them they run selective search themselves, which is
part of what they cost.  ``svm_stage`` models (R-CNN, SPPNet) score proposals with linear
SVMs fitted after the network is trained (:mod:`deeper.detect.svm`).
"""

from __future__ import annotations

import torch
from torch import nn

from deeper.models.detect.proposals import batch_proposals


class Detector(nn.Module):
    #: runs on region proposals (given, or found by selective search)
    needs_proposals: bool = False
    #: scores proposals with linear SVMs fitted after training (R-CNN, SPPNet)
    svm_stage: bool = False
    #: all convolutions: the NHWC layout (oneDNN's fast path on CPUs) suits it; region pooling prefers NCHW
    channels_last_ok: bool = False

    def __init__(self, num_classes: int, in_chans: int, img_size: int):
        super().__init__()
        if img_size < 16:
            raise ValueError(f"img_size must be at least 16, got {img_size}")
        self.num_classes, self.in_chans, self.img_size = num_classes, in_chans, img_size

    def proposals_for(self, images: torch.Tensor, proposals: list[torch.Tensor] | None) -> list[torch.Tensor]:
        """The given proposals on the images' device, else selective search's."""
        if proposals is None:
            proposals = batch_proposals(images)
        return [p.to(images.device, torch.float32) for p in proposals]


def check_targets(targets, n: int) -> None:
    if targets is None or len(targets) != n:
        raise ValueError("a detector in training mode needs one target dict per image")
