"""Batches indexed straight out of an in-memory dataset.

There is no per-sample Python work: each batch is one fancy-index of the uint8
image tensor (already on the training device), one conversion to float in
[0, 1], and an optional batched ``transform`` (the hook where augmentations and
mixing plug in).  The order of an epoch is a pure function of ``(seed, epoch)``,
so a resumed run can regenerate it and skip the batches already seen (the
transform's random state travels in :meth:`BatchLoader.state_dict`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from deeper.data.dataset import ImageDataset
from deeper.errors import ConfigError

#: ``(images float (B, C, H, W), labels) -> (images, labels)``, applied per batch on the device.
BatchTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def epoch_order(
    n: int, epoch: int, *, shuffle: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1
) -> torch.Tensor:
    """The indices of ``n`` samples one rank visits in ``epoch``: a pure function of its arguments.

    Shuffled with a generator seeded from ``(seed, epoch)``; for data-parallel training the
    order is padded by repeating its start to a multiple of ``world_size`` (as
    ``DistributedSampler`` does) and rank ``r`` takes every ``world_size``-th index from ``r``.
    """
    if shuffle:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    else:
        idx = torch.arange(n)
    if world_size > 1:
        total = math.ceil(n / world_size) * world_size
        if total > n:
            idx = torch.cat([idx, idx[: total - n]])
        idx = idx[rank::world_size]
    return idx


class BatchLoader:
    """Iterate ``(images, labels)`` batches of ``dataset``.

    ``rank``/``world_size`` shard every epoch's order for data-parallel training:
    each rank sees a disjoint, equally long slice (the order is padded by
    repeating its start, as ``DistributedSampler`` does).
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        transform: BatchTransform | None = None,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        if len(dataset) == 0:
            raise ConfigError(f"{dataset.name}: the dataset is empty")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} outside world of size {world_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.transform = transform
        self.channels_last = channels_last
        self.dtype = dtype
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._skip = 0

    @property
    def samples_per_rank(self) -> int:
        return math.ceil(len(self.dataset) / self.world_size)

    def __len__(self) -> int:
        n = self.samples_per_rank
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch (what the training loop asks of every source)."""
        return len(self)

    def state_dict(self) -> dict:
        """What a resumed run needs beyond ``(seed, epoch)``: the augmentation generator's state."""
        t = self.transform
        return {"transform": t.state_dict()} if t is not None and hasattr(t, "state_dict") else {}

    def load_state_dict(self, state: dict) -> None:
        if state.get("transform") and self.transform is not None:
            self.transform.load_state_dict(state["transform"])

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Choose the epoch whose order the next iteration follows, skipping its first batches."""
        self.epoch = epoch
        self._skip = skip_batches

    def order(self, epoch: int) -> torch.Tensor:
        """The sample indices this rank visits in ``epoch`` (on the dataset's device)."""
        idx = epoch_order(len(self.dataset), epoch, shuffle=self.shuffle, seed=self.seed,
                          rank=self.rank, world_size=self.world_size)  # fmt: skip
        return idx.to(self.dataset.device)

    def __iter__(self) -> Iterator:
        idx = self.order(self.epoch)
        start, self._skip = self._skip, 0
        bs = self.batch_size
        for b in range(start, len(self)):
            yield self.batch(idx[b * bs : (b + 1) * bs])

    def images(self, sel: torch.Tensor) -> torch.Tensor:
        """The images at indices ``sel`` as floats in [0, 1], in the loader's dtype and memory layout."""
        x = self.dataset.images[sel].to(self.dtype).div_(255.0)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def batch(self, sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of the samples at indices ``sel``: ``(images, labels)``, transformed."""
        x, y = self.images(sel), self.dataset.labels[sel]
        if self.transform is not None:
            x, y = self.transform(x, y)
        return x, y
