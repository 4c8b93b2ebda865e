"""An image-classification dataset held entirely in memory as uint8 tensors."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from deeper.errors import ConfigError, DataError


def split_indices(n: int, val_size: int | float, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted ``(train, val)`` index tensors splitting ``range(n)``; see :meth:`ImageDataset.split`."""
    k = int(round(val_size * n)) if isinstance(val_size, float) and 0 < val_size < 1 else int(val_size)
    if k < 0 or k >= n:
        raise ConfigError(
            f"validation size {val_size} must leave some of the {n} training images for training"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[k:].sort().values, perm[:k].sort().values


class InMemoryImages:
    """What every in-memory dataset offers over its ``images`` (uint8 ``(N, C, H, W)``) and ``classes``."""

    images: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.images.device


@dataclass(frozen=True)
class ImageDataset(InMemoryImages):
    """``images``: uint8 ``(N, C, H, W)``; ``labels``: int64 ``(N,)`` in ``[0, len(classes))``.

    The tensors are treated as read-only: :meth:`to`, :meth:`subset` and
    :meth:`split` return new datasets and never modify this one.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(
                f"{self.name}: images must be a uint8 tensor (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.ndim != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise DataError(
                f"{self.name}: {self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}"
            )
        if self.labels.dtype != torch.int64:
            object.__setattr__(self, "labels", self.labels.to(torch.int64))

    def to(self, device: str | torch.device) -> ImageDataset:
        """A copy on ``device`` (the whole dataset moves once; batches are then indexed there)."""
        device = torch.device(device)
        if self.images.device == device:
            return self
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))

    def subset(self, indices: torch.Tensor | list[int] | slice) -> ImageDataset:
        if isinstance(indices, slice):
            return replace(self, images=self.images[indices], labels=self.labels[indices])
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return replace(self, images=self.images[idx], labels=self.labels[idx])

    def split(self, val_size: int | float, *, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """Carve a validation set from this one: ``(train, val)``.

        ``val_size`` is a count or a fraction in (0, 1).  The split depends only on
        ``seed`` (not on the training seed), so runs with different training seeds
        are validated on the same images.
        """
        n = len(self)
        k = int(round(val_size * n)) if isinstance(val_size, float) and 0 < val_size < 1 else int(val_size)
        if k < 0 or k >= n:
            raise ConfigError(
                f"validation size {val_size} must leave some of the {n} training images for training"
            )
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(self.images.device)
        return self.subset(perm[k:].sort().values), self.subset(perm[:k].sort().values)

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels.cpu(), minlength=self.num_classes).tolist()
