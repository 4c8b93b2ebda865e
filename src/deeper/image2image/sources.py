"""Batches of photographs for the engine: random patches for training, whole images for evaluation.

:class:`PatchSource` cuts ``batch`` square patches per step out of photographs of any size
held in memory (uint8, on the training device): which photograph (chosen in proportion to
its number of patch positions, so every position is equally likely), where, and which of
the 8 flips and quarter turns are drawn from a generator seeded by ``(seed, epoch)``, so an
epoch is a pure function of them and a resumed run regenerates it and skips the batches
already seen (the source keeps no other state).  Data-parallel ranks take every
``world_size``-th patch of the same draw.

:class:`ImageSource` yields the evaluation images whole (cropped to a multiple of the
scale), consecutive images of one size stacked up to ``batch``.
"""

from __future__ import annotations

import math

import torch

from deeper.data.photos import PhotoSet
from deeper.errors import ConfigError
from deeper.image2image.images import modcrop, resize, rgb_to_y, to_uint8

COLOURS = ("y", "rgb", "grey")


def as_colour(x: torch.Tensor, colour: str) -> torch.Tensor:
    """Float images (N, 1|3, H, W) in [0, 1] as the task reads them: luminance Y, RGB, or the grey image."""
    if colour == "y":
        return rgb_to_y(x)
    if colour == "rgb":
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if colour == "grey":
        return x if x.shape[1] == 1 else x.mean(1, keepdim=True)
    raise ConfigError(f"unknown colour {colour!r} (expected one of {', '.join(COLOURS)})")


def colour_channels(colour: str) -> int:
    return 3 if colour == "rgb" else 1


def _augment(x: torch.Tensor, code: int) -> torch.Tensor:
    if code & 4:
        x = x.transpose(-1, -2)
    if code & 2:
        x = x.flip(-2)
    if code & 1:
        x = x.flip(-1)
    return x


class PatchSource:
    def __init__(self, photos: PhotoSet, *, patch: int, batch_size: int, steps: int, seed: int = 0,
                 colour: str = "y", augment: bool = True, rank: int = 0, world_size: int = 1,
                 balance: bool = False, min_std: float = 0.0, channels_last: bool = False):  # fmt: skip
        if len(photos) == 0:
            raise ConfigError("no training images")
        sizes = [tuple(im.shape[-2:]) for im in photos.images]
        positions = torch.tensor(
            [max(0, h - patch + 1) * max(0, w - patch + 1) for h, w in sizes], dtype=torch.float64
        )
        if positions.sum() == 0:
            biggest = max(min(s) for s in sizes)
            raise ConfigError(
                f"patch {patch} is larger than every training image (the largest fits {biggest})"
            )
        self.photos, self.patch, self.batch_size, self.steps_per_epoch = photos, patch, batch_size, steps
        fits = (positions > 0).double()
        self.weights = fits / fits.sum() if balance else positions / positions.sum()
        self.min_std = float(min_std)
        self.seed, self.colour, self.augment = seed, colour, augment
        self.rank, self.world_size = rank, world_size
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.epoch, self._skip = 0, 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self._skip = epoch, skip_batches

    def draw(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(photo, top, left, flip code)`` of every patch this rank takes in ``epoch``, in order."""
        n = self.steps_per_epoch * self.batch_size * self.world_size
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if not self.min_std:
            which, top, left, code = self._candidates(g, n)
        else:  # candidates in rounds from the same generator, flat ones dropped, until n are kept
            kept: list[tuple[torch.Tensor, ...]] = []
            total = 0
            for _ in range(64):
                cand = self._candidates(g, 2 * n)
                ok = self._spread(*cand[:3]) >= self.min_std
                kept.append(tuple(t[ok] for t in cand))
                total += int(ok.sum())
                if total >= n:
                    break
            if total < n:
                raise ConfigError(
                    f"too few training patches with a standard deviation of at least {self.min_std:g} "
                    "(lower min_std)"
                )
            which, top, left, code = (torch.cat(parts)[:n] for parts in zip(*kept))
        r, k = self.rank, self.world_size
        return which[r::k], top[r::k], left[r::k], code[r::k]

    def _candidates(self, g: torch.Generator, n: int) -> tuple[torch.Tensor, ...]:
        which = torch.multinomial(self.weights, n, replacement=True, generator=g)
        u, v = (
            torch.rand(n, generator=g, dtype=torch.float64),
            torch.rand(n, generator=g, dtype=torch.float64),
        )
        code = torch.randint(0, 8, (n,), generator=g) if self.augment else torch.zeros(n, dtype=torch.long)
        hs = torch.tensor([im.shape[-2] for im in self.photos.images])[which]
        ws = torch.tensor([im.shape[-1] for im in self.photos.images])[which]
        top = (u * (hs - self.patch + 1)).long()
        left = (v * (ws - self.patch + 1)).long()
        return which, top, left, code

    def _spread(self, which: torch.Tensor, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
        """The standard deviation (in [0, 1] units) of each patch's mean over channels."""
        p = self.patch
        out = torch.empty(len(which), dtype=torch.float64)
        for i, (w, t, lf) in enumerate(zip(which.tolist(), top.tolist(), left.tolist())):
            patch = self.photos.images[w][:, t : t + p, lf : lf + p]
            out[i] = float(patch.float().mean(0).std()) / 255.0
        return out

    def __iter__(self):
        which, top, left, code = (t.tolist() for t in self.draw(self.epoch))
        start, self._skip = self._skip, 0
        p, bs = self.patch, self.batch_size
        for b in range(start, self.steps_per_epoch):
            crops = []
            for i in range(b * bs, (b + 1) * bs):
                im = self.photos.images[which[i]][:, top[i] : top[i] + p, left[i] : left[i] + p]
                x = as_colour(im[None].float().div_(255.0), self.colour)
                crops.append(_augment(x, code[i]))
            yield torch.cat(crops).contiguous(memory_format=self.layout)


class ImageSource:
    """Whole images (cropped to a multiple of ``multiple``), as float batches in the task's colour."""

    def __init__(self, photos: PhotoSet, *, batch_size: int = 16, colour: str = "y", multiple: int = 1,
                 channels_last: bool = False):  # fmt: skip
        self.photos, self.colour, self.multiple = photos, colour, multiple
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.batches: list[list[int]] = []
        for i, im in enumerate(photos.images):
            last = self.batches[-1] if self.batches else None
            if last and len(last) < batch_size and photos.images[last[0]].shape == im.shape:
                last.append(i)
            else:
                self.batches.append([i])
        self.steps_per_epoch = len(self.batches)

    @property
    def dataset(self) -> PhotoSet:
        return self.photos

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        pass

    def images(self, indices: list[int]) -> torch.Tensor:
        x = torch.stack([self.photos.images[i] for i in indices]).float().div_(255.0)
        return modcrop(as_colour(x, self.colour), self.multiple).contiguous(memory_format=self.layout)

    def __iter__(self):
        for idx in self.batches:
            yield self.images(idx)


#: the help of the ``scales`` task option (super-resolution, restoration)
SCALES_HELP = "scale augmentation: also train on the photographs downscaled by these factors (e.g. 0.8,0.6)"


def parse_scales(text: str) -> tuple[float, ...]:
    """The factors of a ``scales`` option ("0.8,0.6"): each in (0, 1); empty: none."""
    try:
        factors = tuple(float(f) for f in text.replace(" ", "").split(",") if f)
    except ValueError:
        raise ConfigError(
            f"scales must be numbers separated by commas, like 0.8,0.6 (got {text!r})"
        ) from None
    if bad := [f for f in factors if not 0 < f < 1]:
        raise ConfigError(f"each of scales must lie between 0 and 1 (a downscaling), got {bad[0]:g}")
    return factors


def with_scales(photos: PhotoSet, factors: tuple[float, ...]) -> PhotoSet:
    """Scale augmentation: each photograph, then a copy of it downscaled by each factor (bicubic,
    antialiased, rounded to 8 bits), named ``NAME@FACTOR``; more content at the pixel scale from the same
    photographs (the augmentation of VDSR and its successors)."""
    images, names = list(photos.images), list(photos.names)
    for im, name in zip(photos.images, photos.names):
        x = im[None].float().div(255.0)
        for f in factors:
            images.append(to_uint8(resize(x, f))[0])
            names.append(f"{name}@{f:g}")
    return PhotoSet(photos.name, images, names)


def epoch_steps(patches: int, batch_size: int, world_size: int = 1) -> int:
    """Steps per epoch for ``patches`` patches an epoch shared by ``world_size`` ranks."""
    return max(1, math.ceil(patches / (batch_size * world_size)))


#: evaluation images of a digit dataset (its test split: the first for test, the next for validation)
DIGIT_EVAL = 200


def load_split(data: str, split: str, *, n: int | None = None, data_dir=None) -> PhotoSet:
    """The images of split ``train``/``val``/``test`` of dataset ``data``: the photographs' fixed split,
    or for an image dataset (MNIST, Fashion-MNIST, digits) its training images and, from its test
    split, ``n`` (default 200) test images and the ``n`` after them for validation."""
    from deeper.data import get_dataset_spec, load_dataset
    from deeper.data.photos import load_photos

    spec = get_dataset_spec(data)
    if spec.kind == "photos":
        return load_photos(split).subset(n)
    if split == "train":
        return PhotoSet.of_dataset(load_dataset(data, "train", data_dir=data_dir), n)
    ds = load_dataset(data, "test", data_dir=data_dir)
    k = n or DIGIT_EVAL
    images = ds.images[:k] if split == "test" else ds.images[k : 2 * k]
    if len(images) == 0:
        raise ConfigError(f"{data}: no {split} images left (its test split has {len(ds)})")
    start = 0 if split == "test" else k
    return PhotoSet(ds.name, list(images), [f"{ds.name}-{start + i}" for i in range(len(images))])
