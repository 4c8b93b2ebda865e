"""CIFAR-10 from its *binary* release (fixed-length records: no pickle is ever loaded).

Each record is one label byte followed by 3,072 pixel bytes (1,024 red, then green,
then blue, row-major 32x32).  Accepted layouts in the offline directory or cache,
under ``cifar10/``: the archive ``cifar-10-binary.tar.gz`` (MD5-checked), or the
extracted ``.bin`` files, directly or inside ``cifar-10-batches-bin/`` (checked by
size and label range, as no per-file checksum is published).
"""

from __future__ import annotations

import tarfile
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from deeper.data.dataset import ImageDataset
from deeper.data.download import RemoteFile, downloads_disabled, fetch
from deeper.data.files import describe_location, find_local, searched
from deeper.data.registry import DatasetSpec, DataSources, register_dataset
from deeper.errors import ChecksumError, DataError
from deeper.fileio import file_digest

RECORD = 1 + 3 * 32 * 32
PER_FILE = 10000
MEMBERS = {
    "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
    "test": ["test_batch.bin"],
}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def parse_records(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    if len(data) != PER_FILE * RECORD:
        raise DataError(f"{name}: {len(data)} bytes, expected {PER_FILE} records of {RECORD} bytes")
    rec = np.frombuffer(data, dtype=np.uint8).reshape(PER_FILE, RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() >= len(CLASSES):
        raise DataError(f"{name}: label {labels.max()} out of range 0-9")
    return rec[:, 1:].reshape(PER_FILE, 3, 32, 32).copy(), labels


@dataclass(frozen=True)
class CifarBinarySource:
    archive: RemoteFile
    folder: str = "cifar10"
    inner: str = "cifar-10-batches-bin"

    def _bins(self, sources: DataSources, split: str) -> list[tuple[str, bytes]] | None:
        out = []
        for member in MEMBERS[split]:
            found = find_local(sources, self.folder, [f"{self.inner}/{member}", member])
            if found is None:
                return None
            out.append((str(found[1]), found[1].read_bytes()))
        return out

    def _from_archive(self, sources: DataSources, split: str) -> list[tuple[str, bytes]]:
        found = find_local(sources, self.folder, [self.archive.filename])
        if found is not None:
            kind, path = found
            if self.archive.md5 and file_digest(path, "md5") != self.archive.md5:
                if kind == "offline":
                    raise ChecksumError(f"{path}: MD5 does not match the published {self.archive.md5}")
                path.unlink()
                found = None
        if found is None:
            if not sources.download or downloads_disabled():
                raise DataError(
                    f"CIFAR-10 not found (looked for {searched(sources, self.folder, [self.archive.filename])} "
                    f"and the extracted {self.inner}/*.bin); point --data-dir or DEEPER_DATA at a folder holding it"
                )
            path = fetch(self.archive, sources.cache_dir / self.folder)
        else:
            path = found[1]
        out = []
        try:
            with tarfile.open(path, "r:gz") as tar:
                for member in MEMBERS[split]:
                    fh = tar.extractfile(f"{self.inner}/{member}")
                    if fh is None:
                        raise DataError(f"{path}: {member} is not a regular file")
                    out.append((f"{path}:{member}", fh.read()))
        except KeyError as e:
            raise DataError(f"{path}: archive lacks {e.args[0]}") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: unreadable archive ({e})") from None
        return out

    def load(self, split: str, sources: DataSources) -> ImageDataset:
        files = self._bins(sources, split) or self._from_archive(sources, split)
        parts = [parse_records(data, name) for name, data in files]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        return ImageDataset("cifar10", torch.from_numpy(images), torch.from_numpy(labels), CLASSES)

    def locate(self, sources: DataSources) -> str:
        names = [self.archive.filename, f"{self.inner}/data_batch_1.bin", "data_batch_1.bin"]
        return describe_location(sources, self.folder, names, list(self.archive.urls))


CIFAR10_ARCHIVE = RemoteFile(
    "cifar-10-binary.tar.gz",
    (
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "https://cave.cs.toronto.edu/kriz/cifar-10-binary.tar.gz",
    ),
    md5="c32a1d4ab5d03f1284b67883e8d87530",
)

register_dataset(
    DatasetSpec(
        "cifar10",
        "CIFAR-10 natural images, 10 classes, 50k train + 10k test, 32x32 colour",
        (3, 32, 32),
        CLASSES,
        CifarBinarySource(CIFAR10_ARCHIVE),
        license="see https://www.cs.toronto.edu/~kriz/cifar.html (A. Krizhevsky)",
    )
)
