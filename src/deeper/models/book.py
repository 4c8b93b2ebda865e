"""Import the book's published DeepConvNet parameters (``deep_convnet_params.pkl``).

The file is a pickle, and unpickling can run arbitrary code, so
:func:`load_book_params` refuses unless the caller says it trusts the file.  Even
then it unpickles with an allow-list that admits only what a dict of NumPy
arrays needs; anything else in the stream is rejected.

Mapping onto :class:`~deeper.models.deep_convnet.DeepConvNet`:

- ``W1``...``W6`` (out, in, 3, 3) and ``b1``...``b6`` copy to ``conv1``...``conv6``
  unchanged (both are cross-correlations with the same layout);
- ``W7`` (1024, 50) and ``W8`` (50, 10) are (in, out): they are transposed to
  PyTorch's (out, in);
- the book's ``Dropout`` is *not* inverted: training keeps units unscaled and
  inference multiplies by 0.5.  PyTorch's dropout is the identity at inference,
  so the book's inference ``0.5 * (W8 (0.5 h) + b8)`` becomes ``fc2`` with
  weight ``0.25 W8^T`` and bias ``0.5 b8``: the logits (and so the predictions and
  probabilities) are exactly the book's.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from deeper.errors import CheckpointError, ConfigError
from deeper.models.weights import check_finite

BOOK_SHAPES = {
    "W1": (16, 1, 3, 3), "b1": (16,),
    "W2": (16, 16, 3, 3), "b2": (16,),
    "W3": (32, 16, 3, 3), "b3": (32,),
    "W4": (32, 32, 3, 3), "b4": (32,),
    "W5": (64, 32, 3, 3), "b5": (64,),
    "W6": (64, 64, 3, 3), "b6": (64,),
    "W7": (1024, 50), "b7": (50,),
    "W8": (50, 10), "b8": (10,),
}  # fmt: skip


def _allowed_globals() -> dict[tuple[str, str], object]:
    from numpy._core import multiarray

    return {
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy.core.multiarray", "scalar"): multiarray.scalar,
        ("numpy._core.multiarray", "scalar"): multiarray.scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    }


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, fh, name: str):
        super().__init__(fh)
        self._name = name
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self._name}: refusing to load {module}.{name}: only NumPy arrays are allowed in this file"
            ) from None


def load_book_params(path: str | os.PathLike, *, trust_pickle: bool = False) -> dict[str, np.ndarray]:
    """The arrays of the book's parameter pickle (only with ``trust_pickle=True``)."""
    path = Path(path)
    if not trust_pickle:
        raise ConfigError(
            f"{path} is a Python pickle, which can run arbitrary code when loaded; "
            "pass --trust-pickle only if you trust where it came from"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        params = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), str(path)).load()
    except CheckpointError:
        raise
    except Exception as e:  # a malformed stream can raise almost anything
        raise CheckpointError(f"{path}: not a readable parameter pickle ({type(e).__name__}: {e})") from None
    if not isinstance(params, dict):
        raise CheckpointError(f"{path}: expected a dict of arrays, found {type(params).__name__}")
    return params


def book_to_state_dict(
    params: dict[str, np.ndarray], name: str = "book parameters"
) -> dict[str, torch.Tensor]:
    """The ``DeepConvNet`` state dict (float32) equivalent to the book's parameters."""
    missing = sorted(set(BOOK_SHAPES) - set(params))
    if missing:
        raise CheckpointError(f"{name}: missing {', '.join(missing)}")
    for key, shape in BOOK_SHAPES.items():
        arr = params[key]
        if not isinstance(arr, np.ndarray) or arr.shape != shape:
            got = getattr(arr, "shape", type(arr).__name__)
            raise CheckpointError(f"{name}: {key} has shape {got}, expected {shape}")
    t = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in params.items() if k in BOOK_SHAPES}
    check_finite(t, name)
    state = {}
    for i in range(1, 7):
        state[f"conv{i}.weight"] = t[f"W{i}"]
        state[f"conv{i}.bias"] = t[f"b{i}"]
    state["fc1.weight"] = t["W7"].T
    state["fc1.bias"] = t["b7"]
    state["fc2.weight"] = 0.25 * t["W8"].T
    state["fc2.bias"] = 0.5 * t["b8"]
    return {k: v.to(torch.float32).contiguous() for k, v in state.items()}
