"""MNIST and Fashion-MNIST: IDX files, checked against the published content MD5s.

The download URLs and the MD5s of the ``.gz`` files come from torchvision's own
dataset classes; the MD5s of the decompressed content (what an offline copy is
checked against, whatever its compression) are those published with the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.datasets import MNIST, FashionMNIST

from deeper.data.dataset import ImageDataset
from deeper.data.download import RemoteFile
from deeper.data.files import describe_location, read_content
from deeper.data.idx import expected_size, parse_idx
from deeper.data.registry import DatasetSpec, DataSources, register_dataset
from deeper.errors import DataError

_PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class IdxSource:
    """A dataset published as four IDX files (train/test images/labels)."""

    name: str
    folder: str
    mirrors: tuple[str, ...]
    gz_md5: dict[str, str]  # file name (with .gz) -> MD5 of the published .gz
    content_md5: dict[str, str]  # file name (without .gz) -> MD5 of the decompressed bytes
    classes: tuple[str, ...]
    counts: dict[str, int]

    def _read(self, sources: DataSources, basename: str, **expect) -> np.ndarray:
        gz = basename + ".gz"
        remote = RemoteFile.from_mirrors(gz, self.mirrors, self.gz_md5.get(gz)) if self.mirrors else None
        size = expected_size(expect["dtype"], expect["shape"])  # the file can be no larger
        data = read_content(sources, self.folder, basename, self.content_md5.get(basename), remote, size)
        return parse_idx(data, f"{self.folder}/{basename}", **expect)

    def load(self, split: str, sources: DataSources) -> ImageDataset:
        n = self.counts[split]
        prefix = _PREFIX[split]
        images = self._read(sources, f"{prefix}-images-idx3-ubyte", dtype=np.uint8, shape=(n, 28, 28))
        labels = self._read(sources, f"{prefix}-labels-idx1-ubyte", dtype=np.uint8, shape=(n,))
        if labels.max(initial=0) >= len(self.classes):
            raise DataError(f"{self.folder}/{prefix}-labels-idx1-ubyte: label {labels.max()} out of range")
        return ImageDataset(
            self.name,
            torch.from_numpy(images).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)),
            self.classes,
        )

    def locate(self, sources: DataSources) -> str:
        base = "train-images-idx3-ubyte"
        urls = [m.rstrip("/") + "/" + base + ".gz" for m in self.mirrors]
        return describe_location(sources, self.folder, [base, base + ".gz"], urls)


MNIST_SOURCE = IdxSource(
    name="mnist",
    folder="mnist",
    mirrors=tuple(MNIST.mirrors),
    gz_md5=dict(MNIST.resources),
    content_md5={
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    classes=tuple(str(i) for i in range(10)),
    counts={"train": 60000, "test": 10000},
)

FASHION_SOURCE = IdxSource(
    name="fashion-mnist",
    folder="fashion-mnist",
    mirrors=(
        *FashionMNIST.mirrors,
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    gz_md5=dict(FashionMNIST.resources),
    content_md5={
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    classes=tuple(FashionMNIST.classes),
    counts={"train": 60000, "test": 10000},
)

register_dataset(
    DatasetSpec(
        "mnist",
        "handwritten digits 0-9, 60k train + 10k test, 28x28 grey",
        (1, 28, 28),
        MNIST_SOURCE.classes,
        MNIST_SOURCE,
        license="CC BY-SA 3.0 (Y. LeCun, C. Cortes)",
    )
)
register_dataset(
    DatasetSpec(
        "fashion-mnist",
        "Zalando clothing images, 10 classes, 60k train + 10k test, 28x28 grey",
        (1, 28, 28),
        FASHION_SOURCE.classes,
        FASHION_SOURCE,
        license="MIT (Zalando Research)",
    )
)
