"""The array module behind the scratch engine: NumPy on the CPU, or CuPy on a CUDA GPU.

Every function of the engine asks its inputs which module they belong to
(:func:`get_xp`) and computes with that module only, so one code path serves
both, and a network never mixes NumPy and CuPy arrays: the network converts
what it is given to its own module at the door (:meth:`Sequential.asarray`).

Precision: float64, float32 and float16 are supported throughout.  float16 is
a *storage* format, as in the notes (and as on GPUs): arrays are kept in half
precision, while matrix products accumulate in float32 and the softmax/loss
is computed in float32 (see :func:`matmul` and :func:`compute_dtype`).
"""

from __future__ import annotations

import sys
from types import ModuleType

import numpy as np

from deeper.errors import ConfigError

ENGINES = ("numpy", "cupy")
DTYPES: dict[str, np.dtype] = {
    "float64": np.dtype(np.float64),
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
}


class EngineUnavailable(ConfigError):
    """The requested array module (CuPy) or its device (a CUDA GPU) is not there."""


def array_module(engine: str) -> ModuleType:
    """``numpy`` for ``"numpy"``; ``cupy`` for ``"cupy"`` when CuPy and a CUDA GPU are present."""
    if engine == "numpy":
        return np
    if engine != "cupy":
        raise ConfigError(f"unknown scratch engine {engine!r} (choose from {', '.join(ENGINES)})")
    try:
        import cupy
    except ImportError:
        raise EngineUnavailable(
            "--engine cupy needs CuPy and a CUDA GPU, but CuPy is not installed "
            "(pip install cupy-cuda12x on a machine with a GPU), use --engine numpy"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken: CuPy raises its own runtime errors
        raise EngineUnavailable(f"--engine cupy: CuPy is installed but no CUDA GPU is usable ({e})") from None
    if count < 1:
        raise EngineUnavailable("--engine cupy: CuPy is installed but no CUDA GPU is present")
    return cupy


def cupy_available() -> bool:
    """Whether ``--engine cupy`` can run here (tests skip on this)."""
    try:
        array_module("cupy")
    except EngineUnavailable:
        return False
    return True


def get_xp(*arrays) -> ModuleType:
    """The array module of ``arrays``: CuPy when any of them is a CuPy array, else NumPy.

    Never imports CuPy: if it was not imported, no array can be a CuPy array.
    """
    cupy = sys.modules.get("cupy")
    if cupy is not None and any(isinstance(a, cupy.ndarray) for a in arrays):
        return cupy
    return np


def to_numpy(a) -> np.ndarray:
    """A NumPy array of ``a`` (copied from the GPU when ``a`` is a CuPy array)."""
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, "get", None)  # cupy.ndarray.get() copies to the host
    return get() if callable(get) else np.asarray(a)


def parse_dtype(name: str | np.dtype) -> np.dtype:
    """``np.dtype`` of ``"float64"``, ``"float32"`` or ``"float16"`` (a clear error otherwise)."""
    key = np.dtype(name).name if not isinstance(name, str) else name
    try:
        return DTYPES[key]
    except KeyError:
        raise ConfigError(f"the scratch engine computes in {', '.join(DTYPES)}, not {key!r}") from None


def compute_dtype(dtype) -> np.dtype:
    """The precision sums are accumulated in: float32 for float16 storage, else ``dtype`` itself."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def matmul(a, b):
    """``a @ b``; for float16 operands the products are summed in float32, then rounded to float16.

    (NumPy has no fast half-precision matrix product, and summing thousands of
    float16 products in float16 would lose the small ones: this is what GPUs
    and PyTorch do for half precision too.)
    """
    if a.dtype == np.float16 or b.dtype == np.float16:
        return (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16)
    return a @ b
