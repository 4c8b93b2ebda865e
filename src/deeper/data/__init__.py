"""Datasets in memory, their registry, downloads and the batch loader.

>>> from deeper.data import load_dataset, BatchLoader
>>> train = load_dataset("digits", "train")
>>> x, y = next(iter(BatchLoader(train, 32, shuffle=True)))
"""

from deeper.data import cifar, digits, mnist, photos, scenes  # noqa: F401  (register the datasets)
from deeper.data.dataset import ImageDataset
from deeper.data.loader import BatchLoader, BatchTransform
from deeper.data.registry import (
    DatasetSpec,
    DataSources,
    get_dataset_spec,
    list_datasets,
    load_dataset,
    register_dataset,
)

__all__ = [
    "BatchLoader",
    "BatchTransform",
    "DataSources",
    "DatasetSpec",
    "ImageDataset",
    "get_dataset_spec",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
