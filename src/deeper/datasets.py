"""Datasets for notebooks: ``deeper.datasets.load("mnist", "test")`` and ``deeper.datasets.names()``.

A thin face of :mod:`deeper.data` (the registry, the offline folder, downloads): what ``deeper datasets``
lists, loaded as an :class:`~deeper.data.ImageDataset` (``images`` uint8 ``(N, C, H, W)``, ``labels``,
``classes``).
"""

from __future__ import annotations

from deeper.data import ImageDataset, get_dataset_spec, list_datasets, load_dataset

__all__ = ["info", "load", "names"]


def load(name: str, split: str = "train", *, data_dir: str | None = None) -> ImageDataset:
    """A registered dataset's ``train`` or ``test`` split, in memory (``data_dir``: the offline folder,
    default ``$DEEPER_DATA`` then the download cache)."""
    return load_dataset(name, split, data_dir=data_dir)


def names(pattern: str = "*") -> list[str]:
    """The registered datasets (``deeper datasets``)."""
    import fnmatch

    return [n for n in list_datasets() if fnmatch.fnmatch(n, pattern)]


def info(name: str) -> dict:
    """What a dataset is: shape, classes, kind, description."""
    spec = get_dataset_spec(name)
    return {"name": name, "shape": tuple(spec.image_shape), "classes": tuple(spec.classes), "kind": spec.kind,
            "description": spec.description}  # fmt: skip
