"""PSNR and SSIM of restored images, per image and averaged over a split (torchmetrics).

An evaluation step hands the engine ``preds`` as a dict of candidate images (the network's
output ``"out"``, baselines such as ``"bicubic"``) and ``target`` the original images; each
:class:`ImageScore` scores one candidate: the mean over images of its PSNR or SSIM (data
range 1), after trimming ``border`` pixels on every side (the super-resolution protocol
trims ``scale`` pixels).  The states are a sum and a count, added across processes.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric as TorchMetric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from deeper.image2image.images import trim


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image of ``x`` against ``y`` (N,), data range 1 (identical images: +inf;
    :class:`ImageScore` counts them as :data:`PSNR_CAP`)."""
    return peak_signal_noise_ratio(
        x.double(), y.double(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    ).reshape(-1)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM of each image of ``x`` against ``y`` (N,) (Gaussian window 11, sigma 1.5, data range 1)."""
    return structural_similarity_index_measure(
        x.double(), y.double(), data_range=1.0, reduction="none"
    ).reshape(-1)


#: the PSNR an image identical to its original counts for in an average (instead of +inf)
PSNR_CAP = 100.0


class ImageScore(TorchMetric):
    higher_is_better = True
    full_state_update = False

    def __init__(self, kind: str, key: str = "out", border: int = 0, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("psnr", "ssim"):
            raise ValueError(f"unknown image score {kind!r}")
        self.kind, self.key, self.border = kind, key, border
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: dict, target: torch.Tensor) -> None:
        x, y = trim(preds[self.key], self.border), trim(target, self.border)
        values = psnr(x, y).clamp(max=PSNR_CAP) if self.kind == "psnr" else ssim(x, y)
        self.total += values.sum()
        self.count += values.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count.clamp(min=1)


def scores(kinds: dict[str, tuple[str, str]], border: int = 0) -> dict[str, ImageScore]:
    """``{metric name: ImageScore}`` from ``{metric name: (kind, candidate)}``."""
    return {name: ImageScore(kind, key, border) for name, (kind, key) in kinds.items()}
