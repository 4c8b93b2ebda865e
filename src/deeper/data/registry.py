"""The dataset registry and where datasets are looked for.

A dataset is found, in order, in the offline directory (``--data-dir`` or the
``DEEPER_DATA`` environment variable: one sub-folder per dataset holding the
original files, gzipped or not) and in the download cache (``DEEPER_CACHE``,
default ``~/.cache/deeper``); when it is in neither it is downloaded into the
cache, unless ``DEEPER_OFFLINE=1``.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from deeper.data.dataset import ImageDataset
from deeper.errors import ConfigError, DataError, unknown_name

SPLITS = ("train", "test")


def default_cache_dir() -> Path:
    if env := os.environ.get("DEEPER_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "deeper"


@dataclass(frozen=True)
class DataSources:
    """Where to look for dataset files, and whether downloading is allowed."""

    offline_dir: Path | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    download: bool = True

    @classmethod
    def resolve(cls, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> DataSources:
        """From an explicit ``data_dir``, else ``DEEPER_DATA``, else no offline directory."""
        chosen = data_dir if data_dir not in (None, "") else os.environ.get("DEEPER_DATA") or None
        offline = None
        if chosen is not None:
            offline = Path(chosen).expanduser()
            if not offline.is_dir():
                origin = "--data-dir" if data_dir not in (None, "") else "DEEPER_DATA"
                raise DataError(f"data directory {offline} (from {origin}) does not exist or is not a folder")
        return cls(offline_dir=offline, download=download)

    def roots(self) -> list[tuple[str, Path]]:
        """``(kind, folder)`` pairs in search order; kind is ``offline`` or ``cache``."""
        roots = [("offline", self.offline_dir)] if self.offline_dir is not None else []
        return roots + [("cache", self.cache_dir)]


class DatasetSource(Protocol):
    def load(self, split: str, sources: DataSources) -> ImageDataset: ...

    def locate(self, sources: DataSources) -> str: ...


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    image_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    source: DatasetSource
    license: str = ""
    #: what a sample is: "images" (an image and its class) or "scenes" (boxes, masks, captions);
    #: a task trains on datasets of its kind (``deeper tasks``)
    kind: str = "images"

    @property
    def num_classes(self) -> int:
        return len(self.classes)


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_datasets(pattern: str = "*") -> list[str]:
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_dataset_spec(name: str) -> DatasetSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("dataset", name, _REGISTRY) from None


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    sources: DataSources | None = None,
) -> ImageDataset:
    """Load one split of a registered dataset into memory (CPU, uint8)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    spec = get_dataset_spec(name)
    sources = sources or DataSources.resolve(data_dir, download=download)
    ds = spec.source.load(split, sources)
    if ds.image_shape != spec.image_shape:
        raise DataError(f"{name}/{split}: images of shape {ds.image_shape}, expected {spec.image_shape}")
    return ds
