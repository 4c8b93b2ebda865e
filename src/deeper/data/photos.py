"""Real photographs for image-to-image tasks: scikit-image's sample images and scikit-learn's two.

Both packages ship their photographs, so ``--data photos`` never needs the network.
The photographs have their own sizes (102x102 to 1411x1411), grey or colour, and
are kept as a list of uint8 tensors ``(C, H, W)``.  The fixed split:

- **test** (five natural photographs, our "Set5"): astronaut, camera, chelsea,
  coffee (scikit-image) and flower (scikit-learn);
- **val**: rocket;
- **train**: every other photograph (china; brick, grass, gravel: textures; moon,
  coins, clock, page, text, cell, microaneurysms, hubble_deep_field,
  immunohistochemistry, retina, and the two views of stereo_motorcycle).

Synthetic images (checkerboard, colorwheel, logo, binary_blobs, horse, the phantom)
are left out.  :class:`PhotoPatches` is a classification set made of the training
photographs: 32x32 colour patches labelled with the photograph they come from,
the pretext task of the feature network of the perceptual and style losses (no
ImageNet weights exist here).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from deeper.data.dataset import ImageDataset
from deeper.data.registry import DatasetSpec, DataSources, register_dataset
from deeper.errors import ConfigError, DataError

TEST = ("astronaut", "camera", "chelsea", "coffee", "flower")
VAL = ("rocket",)
TRAIN = (
    "china", "brick", "grass", "gravel", "moon", "coins", "clock", "page", "text", "cell",
    "microaneurysms", "hubble_deep_field", "immunohistochemistry", "retina",
    "motorcycle_left", "motorcycle_right",
)  # fmt: skip
SPLITS = {"train": TRAIN, "val": VAL, "test": TEST}
#: the photographs that scikit-learn ships (the others are scikit-image's)
SKLEARN = ("china", "flower")


def read_photo(name: str) -> np.ndarray:
    """One bundled photograph as a uint8 array, (H, W) grey or (H, W, 3) colour."""
    if name in SKLEARN:
        return _sklearn_image(name)
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return np.asarray(left if name.endswith("left") else right, dtype=np.uint8)
    fn = getattr(skimage.data, name, None)
    if fn is None:
        raise DataError(f"no photograph {name!r} in scikit-image {_skimage_version()}")
    img = np.asarray(fn())
    if img.dtype != np.uint8:
        raise DataError(f"photograph {name!r} is {img.dtype}, expected uint8")
    return img


def _sklearn_image(name: str) -> np.ndarray:
    """One of scikit-learn's two sample images, read from its package folder (as ``load_sample_image`` reads
    it, without importing scikit-learn, which takes seconds)."""
    import importlib.util
    from pathlib import Path

    from PIL import Image

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "images" / f"{name}.jpg" if spec and spec.origin else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(f"{name}.jpg"), dtype=np.uint8)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _skimage_version() -> str:
    import skimage

    return skimage.__version__


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, 3|4) uint8 -> (C, H, W) uint8 tensor, C = 1 or 3 (alpha dropped)."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise DataError(f"an image of shape {img.shape} is neither grey nor RGB")
    return torch.from_numpy(np.ascontiguousarray(img[:, :, :3].transpose(2, 0, 1)))


@dataclass
class PhotoSet:
    """Images of their own sizes: ``images[i]`` is a uint8 tensor (C, H, W), ``names[i]`` its name."""

    name: str
    images: list[torch.Tensor]
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return PHOTOS_SHAPE  # sizes vary: the registry's placeholder shape

    @property
    def device(self) -> torch.device:
        return self.images[0].device if self.images else torch.device("cpu")

    def to(self, device) -> PhotoSet:
        return PhotoSet(self.name, [im.to(device) for im in self.images], list(self.names))

    def subset(self, n: int | None) -> PhotoSet:
        return self if n is None else PhotoSet(self.name, self.images[:n], self.names[:n])

    @classmethod
    def of_dataset(cls, ds: ImageDataset, n: int | None = None) -> PhotoSet:
        """The images of an in-memory dataset (MNIST, Fashion-MNIST, digits) as a photo set."""
        images = ds.images if n is None else ds.images[:n]
        return cls(ds.name, list(images), [f"{ds.name}-{i}" for i in range(len(images))])


#: the placeholder (C, H, W) of the photo sets in the registry: colour, any size
PHOTOS_SHAPE = (3, 0, 0)
_CACHE: dict[str, torch.Tensor] = {}


def load_photos(split: str = "train", names: tuple[str, ...] | None = None) -> PhotoSet:
    """A split of the bundled photographs (or the photographs ``names``), read once per process."""
    if names is None:
        if split not in SPLITS:
            raise _unknown_split(split)
        names = SPLITS[split]
    images = []
    for n in names:
        if n not in _CACHE:
            _CACHE[n] = to_tensor(read_photo(n))
        images.append(_CACHE[n])
    return PhotoSet("photos", images, list(names))


def _unknown_split(split: str) -> ConfigError:
    return ConfigError(f"unknown split {split!r} of photos (expected one of {', '.join(SPLITS)})")


@contextmanager
def splits(**names: tuple[str, ...]) -> Iterator[None]:
    """Inside the block, each split named (``train=(...)``, ``test=(...)``) holds those photographs instead: how a
    benchmark trains through the engine on other photographs than the fixed split's (a cross-validation fold)."""
    if unknown := sorted(set(names) - set(SPLITS)):
        raise _unknown_split(unknown[0])
    saved = dict(SPLITS)
    SPLITS.update({k: tuple(v) for k, v in names.items()})
    try:
        yield
    finally:
        SPLITS.clear()
        SPLITS.update(saved)


@dataclass(frozen=True)
class PhotosSource:
    def load(self, split: str, sources: DataSources) -> PhotoSet:
        return load_photos(split)

    def locate(self, sources: DataSources) -> str:
        return "bundled with scikit-image and scikit-learn (always available)"


def photo_patches(split: str, *, size: int = 32, per_photo: int = 1500, seed: int = 0) -> ImageDataset:
    """``size`` x ``size`` RGB patches of the training photographs (grey ones repeated on three channels),
    labelled with their photograph; train and test patches are drawn with different seeds."""
    photos = load_photos("train")
    g = torch.Generator().manual_seed(seed * 2 + (split == "test"))
    n = per_photo if split == "train" else per_photo // 5
    out, labels = [], []
    for k, im in enumerate(photos.images):
        im = im.expand(3, -1, -1) if im.shape[0] == 1 else im
        h, w = im.shape[-2:]
        ys = torch.randint(0, h - size + 1, (n,), generator=g)
        xs = torch.randint(0, w - size + 1, (n,), generator=g)
        out.append(torch.stack([im[:, y : y + size, x : x + size] for y, x in zip(ys.tolist(), xs.tolist())]))
        labels.append(torch.full((n,), k, dtype=torch.int64))
    return ImageDataset("photo-patches", torch.cat(out), torch.cat(labels), tuple(photos.names))


@dataclass(frozen=True)
class PatchSource:
    def load(self, split: str, sources: DataSources) -> ImageDataset:
        return photo_patches(split)

    def locate(self, sources: DataSources) -> str:
        return "cut from the training photographs bundled with scikit-image and scikit-learn"


register_dataset(
    DatasetSpec(
        "photos",
        f"{len(TRAIN)} train / {len(VAL)} val / {len(TEST)} test photographs of scikit-image and "
        "scikit-learn, any size (offline)",
        PHOTOS_SHAPE,
        TRAIN + VAL + TEST,
        PhotosSource(),
        license="scikit-image and scikit-learn sample images (public domain / CC, see their docs)",
        kind="photos",
    )
)
register_dataset(
    DatasetSpec(
        "photo-patches",
        "32x32 patches of the training photographs, labelled by photograph (a pretext task for features)",
        (3, 32, 32),
        TRAIN,
        PatchSource(),
        license="scikit-image and scikit-learn sample images",
    )
)
