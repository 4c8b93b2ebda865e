"""Resampling a training split: k-fold, bootstrap and weighted draws.

The helpers behind ``deeper cv`` (stratified k-fold), bagging (a bootstrap
resample with replacement) and boosting (draws weighted towards the images an
earlier member got wrong).  Each is a pure function of its inputs and a seed;
none knows about the runs that use it.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as st_save

from deeper.data.dataset import ImageDataset
from deeper.errors import ConfigError
from deeper.fileio import write_bytes_atomic


def kfold_indices(
    labels: torch.Tensor, folds: int, fold: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` indices of fold ``fold`` of ``folds`` stratified folds of ``labels``."""
    from sklearn.model_selection import StratifiedKFold

    y = labels.cpu().numpy()
    if folds < 2 or not 0 <= fold < folds:
        raise ConfigError(f"fold {fold} of {folds}: need folds >= 2 and 0 <= fold < folds")
    if np.bincount(y).max(initial=0) < folds:
        raise ConfigError(f"{folds} folds need at least {folds} images of the largest class")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    train, val = next(itertools.islice(splitter.split(np.zeros(len(y)), y), fold, None))
    return train, val


def kfold_split(
    ds: ImageDataset, folds: int, fold: int, *, seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    train, val = kfold_indices(ds.labels, folds, fold, seed=seed)
    return ds.subset(torch.from_numpy(train)), ds.subset(torch.from_numpy(val))


def bootstrap_resample(ds: ImageDataset, *, seed: int) -> ImageDataset:
    """``len(ds)`` images drawn with replacement (about 63.2% of them distinct), seeded."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + 4242)
    idx = torch.randint(0, len(ds), (len(ds),), generator=g)
    return ds.subset(idx)


def weighted_resample(ds: ImageDataset, weights: torch.Tensor, *, seed: int) -> ImageDataset:
    """``len(ds)`` images drawn with replacement, image i with probability ``weights[i]``, seeded."""
    if weights.shape != (len(ds),):
        raise ConfigError(f"{len(weights)} sample weights for a training split of {len(ds):,} images")
    g = torch.Generator().manual_seed(seed * 1_000_003 + 777)
    idx = torch.multinomial(weights.double(), len(ds), replacement=True, generator=g)
    return ds.subset(idx)


def save_sample_weights(path: Path, weights: torch.Tensor) -> None:
    write_bytes_atomic(path, st_save({"weights": weights.double().contiguous()}))


def load_sample_weights(path: str | Path) -> torch.Tensor:
    try:
        return load_file(str(path))["weights"]
    except (OSError, KeyError) as e:
        raise ConfigError(f"cannot read the boosting sample weights {path}: {e}") from None
