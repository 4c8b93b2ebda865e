"""scikit-learn's bundled 8x8 handwritten digits, served as 28x28 MNIST look-alikes.

The 1,797 images ship inside scikit-learn, so a run on ``digits`` never needs the
network.  Each 8x8 image (values 0-16) is resized to 20x20 (bilinear, the size of
the digit box in MNIST) and centred in a 28x28 frame with a 4-pixel margin, then
scaled to 0-255, so models built for MNIST run on it unchanged.  The split is a
fixed stratified 80/20 (1,437 train, 360 test).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deeper.data.dataset import ImageDataset
from deeper.data.registry import DatasetSpec, DataSources, register_dataset

CLASSES = tuple(str(i) for i in range(10))


def _resize_to_mnist(images: torch.Tensor) -> torch.Tensor:
    """(N, 8, 8) float in [0, 16] -> (N, 1, 28, 28) uint8."""
    x = images.unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = F.pad(x, (4, 4, 4, 4))
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@dataclass(frozen=True)
class DigitsSource:
    test_fraction: float = 0.2
    seed: int = 0

    def load(self, split: str, sources: DataSources) -> ImageDataset:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        idx = torch.arange(len(bunch.target))
        train_idx, test_idx = train_test_split(
            idx.numpy(), test_size=self.test_fraction, random_state=self.seed, stratify=bunch.target
        )
        chosen = sorted(train_idx if split == "train" else test_idx)
        images = _resize_to_mnist(torch.as_tensor(bunch.images[chosen], dtype=torch.float32))
        labels = torch.as_tensor(bunch.target[chosen], dtype=torch.int64)
        return ImageDataset("digits", images, labels, CLASSES)

    def locate(self, sources: DataSources) -> str:
        return "bundled with scikit-learn (always available)"


register_dataset(
    DatasetSpec(
        "digits",
        "scikit-learn's 1,797 8x8 digits resized to 28x28 (offline, tiny)",
        (1, 28, 28),
        CLASSES,
        DigitsSource(),
        license="CC BY 4.0 (UCI optical recognition of handwritten digits)",
    )
)
