"""Shared fixtures.

Every test runs with a private download cache and with downloads disabled, so no
test can reach the network by accident; the download tests serve files from a
local HTTP server instead.  Tests that need the real MNIST files use the
``mnist_dir`` fixture, which points at ``DEEPER_DATA`` (CI sets it to
``../shared/datasets``) and skips when the files are absent.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from deeper.data.idx import encode_idx

REPO = Path(__file__).resolve().parents[1]
_ENV_DATA = os.environ.get("DEEPER_DATA")


def _real_data_root() -> Path | None:
    for candidate in (_ENV_DATA, REPO.parent / "shared" / "datasets"):
        if candidate and (Path(candidate) / "mnist" / "t10k-images-idx3-ubyte.gz").exists():
            return Path(candidate).resolve()
        if candidate and (Path(candidate) / "mnist" / "t10k-images-idx3-ubyte").exists():
            return Path(candidate).resolve()
    return None


REAL_DATA = _real_data_root()
BOOK_PKL = REPO.parent / "shared" / "peer" / "book_deep_convnet_params.pkl"


@pytest.fixture(autouse=True)
def _isolated_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DEEPER_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("DEEPER_OFFLINE", "1")
    monkeypatch.delenv("DEEPER_DATA", raising=False)


@pytest.fixture(autouse=True)
def _restored_threads():
    """A test that builds a task outside the engine (rl, caption narrow torch's threads) leaves the
    thread count as it found it: later in-process runs must match their resumed subprocesses bit for bit."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def one_thread():
    """Batch-1 and small-tensor work: one torch thread is as fast, and far faster on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def mnist_dir(monkeypatch) -> Path:
    if REAL_DATA is None:
        pytest.skip("real MNIST files not available (set DEEPER_DATA)")
    monkeypatch.setenv("DEEPER_DATA", str(REAL_DATA))
    return REAL_DATA


@pytest.fixture
def book_pkl() -> Path:
    if not BOOK_PKL.exists():
        pytest.skip("the book's parameter file is not available")
    return BOOK_PKL


def write_fake_mnist(
    root: Path, folder: str = "mnist", n_train: int = 60, n_test: int = 20, gz: bool = True, seed: int = 0
):
    """Random IDX files in the MNIST layout; returns the arrays written."""
    rng = np.random.default_rng(seed)
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = (np.arange(n) % 10).astype(np.uint8)
    for name, arr in arrays.items():
        data = encode_idx(arr)
        if gz:
            (d / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (d / name).write_bytes(data)
    return arrays
