"""Multi-digit scenes for detection, segmentation and captioning, built from MNIST digits.

A scene is a black canvas (0) with 28x28 digits pasted at random scale and position.
Each digit's 28x28 cell is resized to ``size x size`` pixels (``size`` drawn uniformly
from the preset's range: the range is the side of the scaled cell, as in the public
MNIST-ObjectDetection generator; the ink inside is about 20/28 of it), pixels that end
below :data:`INK_MIN` are set to 0, and only the digit's *ink* (the nonzero pixels of
the scaled cell) counts from then on:

- ``boxes``: float32 pixel ``xyxy``, tight around the ink: ``x1``/``y1`` the first ink
  column/row, ``x2``/``y2`` one past the last (``masks_to_boxes(mask) + [0, 0, 1, 1]``);
- the ink box always lies inside the canvas; positions are uniform over the places
  that keep it inside and meet the preset's overlap rule against the digits already
  placed (up to 64 candidate places per digit; a digit that finds none is left out,
  so crowded presets hold a little fewer digits than drawn; the ``counts`` tensor is
  the truth and never falls below the preset's minimum: a scene that would is laid out
  again);
- where digits overlap, the image takes the max of their ink; the masks give an
  overlapped pixel to the digit pasted later (later digits lie on top: instance
  ``i + 1`` is pasted after instance ``i``);
- ``instance_masks``: uint8 (N, H, W), 0 = background, ``i + 1`` on the ink pixels
  (> 0) of instance ``i`` that no later instance covers; ``class_masks``: uint8
  (N, H, W), 0 = background, ``label + 1`` on the same pixels.  An instance's mask
  spans exactly its box unless a later instance hides part of it (only in the
  overlapping presets);
- ``captions``: :data:`~deeper.data.captions.NUM_CAPTIONS` paraphrases per scene in the
  grammar of :mod:`deeper.data.captions` (parse them back with ``parse_caption``).

Presets (:data:`PRESETS`; ``SIZE`` is the side of the scaled 28x28 cell)::

    name             canvas HxW  digits  SIZE    overlap of boxes         train/val/test
    scenes-det       128x128     1-5     16-48   IoU < 0.25, cover < 1/2  10000/1000/2000
    scenes-seg        64x84      1-3     20-36   none (1 px apart)        10000/1000/2000
    scenes-cap        64x64      2-3     20-32   none (2 px apart)        10000/1000/2000
    scenes-det-300   300x300     1-20    15-100  IoU < 0.25, cover < 1/2   5000/500/1000

("cover < 1/2": the intersection of two boxes is less than half the smaller one, so a
small digit cannot sit inside a big one's box; IoU alone allows that, and the small
digit can then vanish behind the big one's ink.)

``scenes-seg`` has the layout of the public M2NIST set, ``scenes-det-300`` that of the
MNIST-ObjectDetection generator (which makes 10,000/1,000; pass ``n=`` for more: a
300x300 scene takes 270 KB in memory with its two masks).  Every preset also exists
with Fashion-MNIST items (``source="fashion-mnist"`` or the name with ``-fashion``).

Protocol: ``train`` and ``val`` scenes draw their digits from the source's *training*
split, ``test`` scenes from its ``t10k`` split only.  The training digits are split
once (:func:`digit_pools`: seed 0, 5,000 digits, the trainer's default validation
carve for MNIST-size data; 10% for small sources) into a train pool and a disjoint
val pool; ``source_index`` records, per object, the digit's index in the source split,
so the separation can be checked.  Digits without a pixel >= 128 are never drawn.

Scenes are deterministic for (preset, split, seed): they are made in chunks of
:data:`CHUNK` scenes, each from its own random stream, so the first ``n`` scenes are
the same whatever the total count.  :func:`load_scenes` caches them under
``<cache>/scenes/`` (``DEEPER_CACHE``, default ``~/.cache/deeper``) as safetensors plus
a JSON file with the captions, keyed by a hash of the preset geometry, count, seed,
split, generator version and the source digits' content; both files are written
atomically and checked (key, SHA-256 of the tensor file) when read, and a corrupt or
stale entry is made again.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deeper.data.captions import caption_names, describe_scene, noun_for
from deeper.data.dataset import ImageDataset, InMemoryImages, split_indices
from deeper.data.loader import BatchLoader
from deeper.data.mnist import FASHION_SOURCE, MNIST_SOURCE
from deeper.data.registry import (
    DatasetSpec,
    DataSources,
    default_cache_dir,
    get_dataset_spec,
    load_dataset,
    register_dataset,
)
from deeper.errors import ConfigError, DataError, unknown_name
from deeper.fileio import file_digest, write_bytes_atomic, write_text_atomic

GENERATOR_VERSION = 1
FORMAT = "deeper-scenes/1"
INK_MIN = 16  # scaled pixels below this are set to 0 (an invisible halo would widen boxes and masks)
STRONG_INK = 128  # a digit is drawn only when some pixel reaches this
CHUNK = 256  # scenes per random stream
CANDIDATES = 64  # candidate places tried per digit
MIN_ROUNDS = 16  # layouts tried for a scene before its minimum count is declared out of reach
SCENE_SPLITS = ("train", "val", "test")
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
SOURCES = {"mnist": "", "fashion-mnist": "-fashion"}


@dataclass(frozen=True)
class ScenePreset:
    """The layout of a scene family; ``min_size``/``max_size``: side of the scaled 28x28 cell.

    ``max_iou > 0``: a digit's box may overlap each earlier box at IoU below it, and by
    less than ``max_cover`` of the smaller box's area (so that no small digit sits inside
    a big one's box); ``max_iou == 0``: boxes never overlap and lie at least ``gap`` pixels apart (along x
    or y).  ``train``/``val``/``test``: default scene counts.
    """

    name: str
    height: int
    width: int
    min_objects: int
    max_objects: int
    min_size: int
    max_size: int
    max_iou: float = 0.0
    max_cover: float = 1.0
    gap: int = 0
    far_relations: bool = False  # relation captions between non-neighbours (see describe_scene)
    train: int = 10_000
    val: int = 1_000
    test: int = 2_000
    description: str = ""

    def __post_init__(self):
        if not 1 <= self.min_objects <= self.max_objects <= 254:
            raise ConfigError(f"scene preset {self.name}: need 1 <= min_objects <= max_objects <= 254")
        if not 1 <= self.min_size <= self.max_size <= min(self.height, self.width):
            raise ConfigError(
                f"scene preset {self.name}: digit sizes {self.min_size}-{self.max_size} must fit the "
                f"{self.height}x{self.width} canvas"
            )
        if not 0 <= self.max_iou <= 1 or not 0 < self.max_cover <= 1 or self.gap < 0:
            raise ConfigError(
                f"scene preset {self.name}: need 0 <= max_iou <= 1, 0 < max_cover <= 1, gap >= 0"
            )

    def count(self, split: str) -> int:
        return {"train": self.train, "val": self.val, "test": self.test}[split]

    def layout(self) -> dict:
        """The parameters that decide the scenes (the cache key's part from the preset)."""
        d = asdict(self)
        for k in ("train", "val", "test", "description"):
            d.pop(k)
        if not d["far_relations"]:  # presets from before the option keep their cache keys
            d.pop("far_relations")
        return d


_DET = {"max_iou": 0.25, "max_cover": 0.5}
PRESETS: dict[str, ScenePreset] = {
    p.name: p
    for p in (
        ScenePreset("scenes-det", 128, 128, 1, 5, 16, 48, **_DET, description="detection, 1-5 digits, may overlap"),
        ScenePreset("scenes-seg", 64, 84, 1, 3, 20, 36, gap=1, description="segmentation, 1-3 digits (M2NIST)"),
        ScenePreset("scenes-cap", 64, 64, 2, 3, 20, 32, gap=2, description="captioning, 2-3 digits apart"),
        ScenePreset(
            "scenes-cap-hard", 64, 64, 3, 4, 18, 28, gap=1, far_relations=True,
            description="captioning, 3-4 digits, relations between non-neighbours",
        ),
        ScenePreset(
            "scenes-det-300", 300, 300, 1, 20, 15, 100, **_DET, train=5_000, val=500, test=1_000,
            description="detection, 1-20 digits (MNIST-ObjectDetection layout)",
        ),
    )
}  # fmt: skip


def scene_names() -> list[str]:
    """Every registered scene dataset name (each preset with each digit source)."""
    return [p + suffix for p in PRESETS for suffix in SOURCES.values()]


def resolve_preset(preset: str | ScenePreset, source: str | None = None) -> tuple[ScenePreset, str, str]:
    """``(preset, source, dataset name)`` for a preset or a registered name like ``scenes-det-fashion``."""
    if isinstance(preset, ScenePreset):
        source = source or "mnist"
        if source not in SOURCES:
            raise unknown_name("scene source", source, SOURCES)
        return preset, source, preset.name + SOURCES[source]
    base, named = preset, None
    for src, suffix in SOURCES.items():
        if suffix and preset.endswith(suffix) and preset[: -len(suffix)] in PRESETS:
            base, named = preset[: -len(suffix)], src
    if base not in PRESETS:
        raise unknown_name("scene preset", preset, scene_names())
    if source is not None and source not in SOURCES:
        raise unknown_name("scene source", source, SOURCES)
    if named and source and source != named:
        raise ConfigError(f"scene preset {preset!r} takes its digits from {named}, not {source}")
    source = named or source or "mnist"
    return PRESETS[base], source, base + SOURCES[source]


def digit_pools(n_train: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_pool, val_pool)``: disjoint sorted indices into the source's training split.

    5,000 digits go to the val pool when there are at least 50,000 (MNIST), else 10%.
    """
    k = 5000 if n_train >= 50_000 else max(1, n_train // 10)
    return split_indices(n_train, k, seed=seed)


@dataclass(frozen=True)
class SceneDataset(InMemoryImages):
    """Scenes in memory; ``K`` = the preset's ``max_objects``, objects padded at the end.

    ``split_name``: train, val or test (:meth:`split` carves a validation set, as
    :meth:`ImageDataset.split <deeper.data.ImageDataset.split>` does).
    ``images`` uint8 (N, 1, H, W); ``boxes`` float32 (N, K, 4) pixel xyxy (0 padding);
    ``labels`` int64 (N, K), -1 padding; ``counts`` int64 (N,) objects per scene;
    ``class_masks``/``instance_masks`` uint8 (N, H, W); ``source_index`` int64 (N, K),
    the index of each object's digit in the ``source_split`` of ``source`` (-1 padding);
    ``sizes`` int64 (N, K), the side its 28x28 cell was scaled to (0 padding);
    ``captions``: per scene a tuple of caption strings.  The tensors are treated as
    read-only: :meth:`to`, :meth:`subset` and :meth:`split` return new datasets.
    """

    name: str
    split_name: str
    images: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    counts: torch.Tensor
    class_masks: torch.Tensor
    instance_masks: torch.Tensor
    source_index: torch.Tensor
    sizes: torch.Tensor
    captions: tuple[tuple[str, ...], ...]
    classes: tuple[str, ...]
    source: str = "mnist"
    source_split: str = "train"

    def __post_init__(self):
        n = self.images.shape[0] if self.images.ndim == 4 else -1
        if self.images.dtype != torch.uint8 or n < 0 or self.images.shape[1] != 1:
            raise DataError(f"{self.name}: images must be uint8 (N, 1, H, W), got {tuple(self.images.shape)}")
        h, w = self.images.shape[2:]
        k = self.labels.shape[1] if self.labels.ndim == 2 else -1
        expect = {
            "boxes": (torch.float32, (n, k, 4)),
            "labels": (torch.int64, (n, k)),
            "counts": (torch.int64, (n,)),
            "class_masks": (torch.uint8, (n, h, w)),
            "instance_masks": (torch.uint8, (n, h, w)),
            "source_index": (torch.int64, (n, k)),
            "sizes": (torch.int64, (n, k)),
        }
        for field, (dtype, shape) in expect.items():
            t = getattr(self, field)
            if t.dtype != dtype or tuple(t.shape) != shape:
                raise DataError(
                    f"{self.name}: {field} must be {dtype} {shape}, got {t.dtype} {tuple(t.shape)}"
                )
        if len(self.captions) != n:
            raise DataError(f"{self.name}: {n} scenes but {len(self.captions)} caption lists")
        if not isinstance(self.captions, tuple) or (n and not isinstance(self.captions[0], tuple)):
            object.__setattr__(self, "captions", tuple(tuple(c) for c in self.captions))

    @property
    def max_objects(self) -> int:
        return self.labels.shape[1]

    _TENSORS = (
        "images",
        "boxes",
        "labels",
        "counts",
        "class_masks",
        "instance_masks",
        "source_index",
        "sizes",
    )

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in self._TENSORS}

    def to(self, device: str | torch.device) -> SceneDataset:
        """A copy on ``device`` (captions stay Python strings)."""
        device = torch.device(device)
        if self.images.device == device:
            return self
        return replace(self, **{k: v.to(device) for k, v in self.tensors().items()})

    def subset(self, indices: torch.Tensor | list[int] | slice) -> SceneDataset:
        if isinstance(indices, slice):
            return replace(
                self, captions=self.captions[indices], **{k: v[indices] for k, v in self.tensors().items()}
            )
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        caps = tuple(self.captions[i] for i in idx.tolist())
        idx = idx.to(self.device)
        return replace(self, captions=caps, **{k: v[idx] for k, v in self.tensors().items()})

    def split(self, val_size: int | float, *, seed: int = 0) -> tuple[SceneDataset, SceneDataset]:
        """Carve ``(train, val)`` scenes from these (the ``val`` split of :func:`load_scenes` has its own digits)."""
        train, val = split_indices(len(self), val_size, seed=seed)
        return self.subset(train), self.subset(val)

    def float_images(self, indices=None) -> torch.Tensor:
        """Images as float32 in [0, 1], (B, 1, H, W) (all scenes when ``indices`` is None)."""
        x = self.images if indices is None else self.images[self._index(indices)]
        return x.float().div_(255)

    def targets(self, indices=None, *, masks: bool = False) -> list[dict[str, torch.Tensor]]:
        """torchvision-detection targets: per scene ``boxes`` float32 (k, 4), ``labels`` int64 (k,),
        and with ``masks`` the instance masks uint8 (k, H, W) (1 on the pixels the instance owns)."""
        idx = torch.arange(len(self)) if indices is None else self._index(indices).cpu()
        counts = self.counts[idx.to(self.device)].tolist()
        out = []
        for i, k in zip(idx.tolist(), counts, strict=True):
            t = {"boxes": self.boxes[i, :k], "labels": self.labels[i, :k]}
            if masks:
                ids = torch.arange(1, k + 1, device=self.device, dtype=torch.uint8)
                t["masks"] = (self.instance_masks[i][None] == ids[:, None, None]).to(torch.uint8)
            out.append(t)
        return out

    def _index(self, indices) -> torch.Tensor:
        if isinstance(indices, slice):
            return torch.arange(len(self))[indices].to(self.device)
        return torch.as_tensor(indices, dtype=torch.long).reshape(-1).to(self.device)


class SceneLoader(BatchLoader):
    """Batches ``(images, targets)`` of a :class:`SceneDataset`: float images (B, 1, H, W) in [0, 1] and
    a list of B torchvision-detection target dicts (``boxes``, ``labels``, with ``masks`` the instance
    masks), one per scene, each with as many objects as the scene holds.

    Order, skipping and sharding across ranks are :class:`~deeper.data.BatchLoader`'s.
    """

    def __init__(self, dataset: SceneDataset, batch_size: int, *, masks: bool = False, **kwargs):
        super().__init__(dataset, batch_size, **kwargs)
        self.masks = masks

    def batch(self, sel: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        return self.images(sel), self.dataset.targets(sel, masks=self.masks)


# ---------------------------------------------------------------------------------------------
# generation


def _compatible(cand: np.ndarray, prev: np.ndarray, live: np.ndarray, preset: ScenePreset) -> np.ndarray:
    """(A, T): candidate boxes (A, T, 4) that meet the overlap rule against ``prev`` (A, J, 4) where ``live``."""
    c = cand[:, :, None, :]
    p = prev[:, None, :, :]
    if preset.max_iou > 0:
        iw = np.clip(np.minimum(c[..., 2], p[..., 2]) - np.maximum(c[..., 0], p[..., 0]), 0, None)
        ih = np.clip(np.minimum(c[..., 3], p[..., 3]) - np.maximum(c[..., 1], p[..., 1]), 0, None)
        inter = iw * ih
        area_c = (c[..., 2] - c[..., 0]) * (c[..., 3] - c[..., 1])
        area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
        bad = (inter >= preset.max_iou * (area_c + area_p - inter)) & (preset.max_iou < 1)
        bad |= inter >= preset.max_cover * np.minimum(area_c, area_p)
    else:
        g = preset.gap
        ox = np.minimum(c[..., 2] + g, p[..., 2]) - np.maximum(c[..., 0] - g, p[..., 0])
        oy = np.minimum(c[..., 3] + g, p[..., 3]) - np.maximum(c[..., 1] - g, p[..., 1])
        bad = (ox > 0) & (oy > 0)
    return ~(bad & live[:, None, :]).any(axis=2)


def scale_digits(digits: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (m, 28, 28) -> uint8 (m, size, size): bilinear (antialiased when shrinking), rounded,
    pixels below :data:`INK_MIN` set to 0.  The nonzero pixels are the digit's ink."""
    x = F.interpolate(
        digits.unsqueeze(1).float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    y = x.squeeze(1).round_().clamp_(0, 255).to(torch.uint8)
    y[y < INK_MIN] = 0
    return y


def _take(a: np.ndarray, order: np.ndarray) -> np.ndarray:
    return np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)


def _chunk(
    preset, digits: torch.Tensor, digit_labels: np.ndarray, pool: np.ndarray, rng, cap_rng, names, noun, out
):
    """One chunk of :data:`CHUNK` scenes, written into ``out`` (NumPy views, zero-filled masks and images);
    returns its captions (see :func:`generate_scenes`)."""
    C, K, H, W = CHUNK, preset.max_objects, preset.height, preset.width
    k = rng.integers(preset.min_objects, preset.max_objects + 1, C)
    src = pool[rng.integers(0, len(pool), (C, K))]
    size = rng.integers(preset.min_size, preset.max_size + 1, (C, K))
    valid = np.arange(K)[None, :] < k[:, None]

    # scale each digit's cell (one batch per size) and find its ink box inside the cell
    crops: list[np.ndarray] = []
    group = np.zeros((C, K), np.int64)
    member = np.zeros((C, K), np.int64)
    ink = np.zeros((C, K, 4), np.int64)  # x1, y1, x2, y2 inside the scaled cell
    inked = np.zeros((C, K), bool)
    for g, s in enumerate(np.unique(size[valid]).tolist()):
        rows, cols = np.nonzero(valid & (size == s))
        y = scale_digits(digits[torch.from_numpy(src[rows, cols])], s)
        on_r = (y.amax(2) > 0).to(torch.uint8)  # (m, s): rows with ink
        on_c = (y.amax(1) > 0).to(torch.uint8)
        box = torch.stack(
            [on_c.argmax(1), on_r.argmax(1), s - on_c.flip(1).argmax(1), s - on_r.flip(1).argmax(1)], 1
        )
        crops.append(y.numpy())
        group[rows, cols] = g
        member[rows, cols] = np.arange(len(rows))
        ink[rows, cols] = box.numpy()
        inked[rows, cols] = on_r.amax(1).numpy() > 0
    w = ink[..., 2] - ink[..., 0]
    h = ink[..., 3] - ink[..., 1]

    # place the ink boxes one slot at a time, all scenes of the chunk at once; a scene
    # left with fewer than min_objects digits is laid out again from its first digit
    boxes = np.zeros((C, K, 4), np.int64)
    placed = np.zeros((C, K), bool)
    redo = np.arange(C)
    for _ in range(MIN_ROUNDS):
        placed[redo] = False
        for j in range(K):
            todo = redo[valid[redo, j] & inked[redo, j]]
            if len(todo) == 0:
                continue
            wj, hj = w[todo, j][:, None], h[todo, j][:, None]
            x1 = (rng.random((len(todo), CANDIDATES)) * (W - wj + 1)).astype(np.int64)
            y1 = (rng.random((len(todo), CANDIDATES)) * (H - hj + 1)).astype(np.int64)
            cand = np.stack([x1, y1, x1 + wj, y1 + hj], axis=-1)
            ok = (
                _compatible(cand, boxes[todo, :j], placed[todo, :j], preset) if j else np.ones(x1.shape, bool)
            )
            first = ok.argmax(1)
            found = ok[np.arange(len(todo)), first]
            boxes[todo[found], j] = cand[found, first[found]]
            placed[todo[found], j] = True
        redo = np.nonzero(placed.sum(1) < preset.min_objects)[0]
        if len(redo) == 0:
            break
    count = placed.sum(1)
    if len(redo):
        raise DataError(
            f"scene preset {preset.name}: could not place {preset.min_objects} digits in a "
            f"{preset.height}x{preset.width} scene (digits too large or too many for the overlap rule)"
        )

    # drop the digits that found no place, keeping the pasting order
    order = np.argsort(~placed, axis=1, kind="stable")
    placed, boxes, src, group, member, ink, size = (
        _take(a, order) for a in (placed, boxes, src, group, member, ink, size)
    )
    labels = np.where(placed, digit_labels[src], -1)
    src = np.where(placed, src, -1)
    size = np.where(placed, size, 0)
    boxes[~placed] = 0

    images, inst, cls = out["images"], out["instance_masks"], out["class_masks"]
    rows, cols = np.nonzero(placed)  # row-major: within a scene, slot order = pasting order
    for n, j, g, m, (ix1, iy1, ix2, iy2), (x1, y1, x2, y2), lab in zip(
        rows.tolist(),
        cols.tolist(),
        group[rows, cols].tolist(),
        member[rows, cols].tolist(),
        ink[rows, cols].tolist(),
        boxes[rows, cols].tolist(),
        labels[rows, cols].tolist(),
        strict=True,
    ):
        crop = crops[g][m, iy1:iy2, ix1:ix2]
        region = images[n, y1:y2, x1:x2]
        np.maximum(region, crop, out=region)
        on = crop > 0
        np.copyto(inst[n, y1:y2, x1:x2], np.uint8(j + 1), where=on)
        np.copyto(cls[n, y1:y2, x1:x2], np.uint8(lab + 1), where=on)

    out["boxes"][:] = boxes
    out["labels"][:] = labels
    out["counts"][:] = count
    out["source_index"][:] = src
    out["sizes"][:] = size
    return [
        describe_scene(
            boxes[i, : count[i]],
            labels[i, : count[i]],
            names,
            cap_rng,
            noun,
            far_relations=preset.far_relations,
        )
        for i in range(C)
    ]


def scene_pool(digits: ImageDataset, split: str) -> torch.Tensor:
    """The indices of ``digits`` (the source split) that ``split`` scenes draw from."""
    if split not in SCENE_SPLITS:
        raise ConfigError(f"unknown scene split {split!r} (expected one of {', '.join(SCENE_SPLITS)})")
    if split == "test":
        pool = torch.arange(len(digits))
    else:
        pool = digit_pools(len(digits))[0 if split == "train" else 1]
    strong = digits.images.reshape(len(digits), -1).amax(1) >= STRONG_INK
    return pool[strong[pool]]


def generate_scenes(
    preset: str | ScenePreset,
    digits: ImageDataset,
    split: str = "train",
    *,
    n: int | None = None,
    seed: int = 0,
    name: str | None = None,
) -> SceneDataset:
    """``n`` scenes of ``split`` (train, val or test) from ``digits``, without the cache.

    ``digits`` is the source's *training* split for train and val scenes, its *test*
    split for test scenes (the caller's choice; :func:`load_scenes` makes it right).
    """
    p, _, default_name = resolve_preset(preset)
    n = p.count(split) if n is None else int(n)
    if n < 1:
        raise ConfigError(f"scene count must be at least 1, got {n}")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"scene seed must be a non-negative integer, got {seed!r}")
    digits = digits.to("cpu")
    pool = scene_pool(digits, split).numpy()
    if len(pool) == 0:
        raise DataError(f"{digits.name}: no digit with a pixel >= {STRONG_INK} to draw scenes from")
    images = digits.images.reshape(len(digits), 28, 28) if digits.images.shape[1:] == (1, 28, 28) else None
    if images is None:
        raise DataError(f"{digits.name}: scenes need 28x28 grey digits, got {tuple(digits.images.shape[1:])}")
    names, noun = caption_names(digits.classes), noun_for(digits.classes)
    digit_labels = digits.labels.numpy()
    n_chunks = (n + CHUNK - 1) // CHUNK
    H, W, K, total = p.height, p.width, p.max_objects, n_chunks * CHUNK
    arrays = {
        "images": np.zeros((total, 1, H, W), np.uint8),
        "boxes": np.zeros((total, K, 4), np.float32),
        "labels": np.zeros((total, K), np.int64),
        "counts": np.zeros(total, np.int64),
        "class_masks": np.zeros((total, H, W), np.uint8),
        "instance_masks": np.zeros((total, H, W), np.uint8),
        "source_index": np.zeros((total, K), np.int64),
        "sizes": np.zeros((total, K), np.int64),
    }
    captions: list[list[str]] = []
    with torch.inference_mode():
        for c in range(n_chunks):
            ss = np.random.SeedSequence([seed, _SPLIT_CODE[split], zlib.crc32(p.name.encode()), c])
            layout_ss, caption_ss = ss.spawn(2)
            view = {k: v[c * CHUNK : (c + 1) * CHUNK] for k, v in arrays.items()}
            view["images"] = view["images"][:, 0]
            rngs = np.random.default_rng(layout_ss), np.random.default_rng(caption_ss)
            captions += _chunk(p, images, digit_labels, pool, *rngs, names, noun, view)
    return SceneDataset(
        name=name or default_name,
        split_name=split,
        captions=tuple(tuple(c) for c in captions[:n]),
        classes=tuple(digits.classes),
        source=digits.name,
        source_split="test" if split == "test" else "train",
        **{k: torch.from_numpy(v[:n]) for k, v in arrays.items()},
    )


# ---------------------------------------------------------------------------------------------
# cache


def content_id(digits: ImageDataset) -> str:
    """A digest of the source digits (images and labels), part of the cache key."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(tuple(digits.images.shape)).encode())
    h.update(digits.images.contiguous().numpy().tobytes())
    h.update(digits.labels.contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_key(preset: ScenePreset, split: str, n: int, seed: int, source: str, digits_id: str) -> str:
    spec = {
        "version": GENERATOR_VERSION,
        "preset": preset.layout(),
        "split": split,
        "n": n,
        "seed": seed,
        "source": source,
        "digits": digits_id,
        "chunk": CHUNK,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def cache_paths(root: Path, name: str, split: str, key: str) -> tuple[Path, Path]:
    stem = f"{name}-{split}-{key[:16]}"
    return root / f"{stem}.safetensors", root / f"{stem}.json"


def save_scenes(ds: SceneDataset, tensor_path: Path, json_path: Path, key: str) -> None:
    """Write ``ds`` atomically: the tensors first, then the JSON (captions, key, tensor digest)."""
    from safetensors.torch import save

    data = save(
        {k: v.contiguous().cpu() for k, v in ds.tensors().items()}, metadata={"key": key, "format": FORMAT}
    )
    write_bytes_atomic(tensor_path, data)
    meta = {
        "format": FORMAT,
        "key": key,
        "tensors_sha256": hashlib.sha256(data).hexdigest(),
        "name": ds.name,
        "split": ds.split_name,
        "classes": list(ds.classes),
        "source": ds.source,
        "source_split": ds.source_split,
        "captions": [list(c) for c in ds.captions],
    }
    write_text_atomic(json_path, json.dumps(meta, separators=(",", ":")))


def read_scenes(tensor_path: Path, json_path: Path, key: str) -> SceneDataset | None:
    """The cached scenes, or None when the entry is missing, stale or corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not (tensor_path.is_file() and json_path.is_file()):
        return None
    try:
        meta = json.loads(json_path.read_text())
        if meta.get("format") != FORMAT or meta.get("key") != key:
            return None
        if file_digest(tensor_path) != meta["tensors_sha256"]:
            return None
        tensors = load_file(tensor_path)
        return SceneDataset(
            name=meta["name"],
            split_name=meta["split"],
            captions=tuple(tuple(c) for c in meta["captions"]),
            classes=tuple(meta["classes"]),
            source=meta["source"],
            source_split=meta["source_split"],
            **{k: tensors[k] for k in SceneDataset._TENSORS},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError):
        return None


def load_scenes(
    preset: str | ScenePreset,
    split: str = "train",
    *,
    n: int | None = None,
    seed: int = 0,
    source: str | None = None,
    data_dir: str | os.PathLike | None = None,
    sources: DataSources | None = None,
    download: bool = True,
    cache: bool = True,
    digits: ImageDataset | None = None,
) -> SceneDataset:
    """Scenes of ``split`` (train, val or test), from the cache or made (and cached) now.

    ``preset``: a name of :data:`PRESETS` (with ``-fashion`` for Fashion-MNIST items) or
    a :class:`ScenePreset`; ``n``: scene count (the preset's default for the split);
    ``source``: mnist or fashion-mnist; ``data_dir``/``sources``/``download``: where the
    digits are found, as for :func:`~deeper.data.load_dataset`; ``cache=False`` neither
    reads nor writes the cache; ``digits``: the source split to use instead of loading
    ``source`` (its training split for train/val scenes, its test split for test).
    """
    p, source, name = resolve_preset(preset, source)
    if split not in SCENE_SPLITS:
        raise ConfigError(f"unknown scene split {split!r} (expected one of {', '.join(SCENE_SPLITS)})")
    n = p.count(split) if n is None else int(n)
    if digits is None:
        sources = sources or DataSources.resolve(data_dir, download=download)
        digits = load_dataset(source, "test" if split == "test" else "train", sources=sources)
    if not cache:
        return generate_scenes(p, digits, split, n=n, seed=seed, name=name)
    root = (sources.cache_dir if sources is not None else default_cache_dir()) / "scenes"
    key = cache_key(p, split, n, seed, source, content_id(digits))
    tensor_path, json_path = cache_paths(root, name, split, key)
    if (ds := read_scenes(tensor_path, json_path, key)) is not None:
        return ds
    ds = generate_scenes(p, digits, split, n=n, seed=seed, name=name)
    try:
        save_scenes(ds, tensor_path, json_path, key)
    except OSError as e:  # an unwritable cache costs the next run time, not this one its data
        warnings.warn(f"could not cache the scenes in {root}: {e}", stacklevel=2)
    return ds


# ---------------------------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class SceneSource:
    """The registry's view of a preset: ``load_dataset("scenes-det", "train")`` calls :func:`load_scenes`."""

    preset: str
    source: str

    def load(self, split: str, sources: DataSources) -> SceneDataset:
        return load_scenes(self.preset, split, source=self.source, sources=sources)

    def locate(self, sources: DataSources) -> str:
        where = get_dataset_spec(self.source).source.locate(sources)
        return f"made from {self.source} ({where}); cached in {sources.cache_dir / 'scenes'}"


for _p in PRESETS.values():
    for _source, _suffix in SOURCES.items():
        _classes = MNIST_SOURCE.classes if _source == "mnist" else FASHION_SOURCE.classes
        register_dataset(
            DatasetSpec(
                _p.name + _suffix,
                f"{_source} scenes {_p.height}x{_p.width}: {_p.description}",
                (1, _p.height, _p.width),
                _classes,
                SceneSource(_p.name, _source),
                license="generated from " + _source,
                kind="scenes",
            )
        )
