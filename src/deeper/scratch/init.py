"""Weight initialisers (chapter 6 of the book).

Both draw from a normal distribution whose spread depends on ``fan_in``, the
number of inputs feeding one unit (``in`` for an affine weight (out, in),
``in * kh * kw`` for a convolution weight (out, in, kh, kw)):

- **Xavier** (Glorot), for sigmoid/tanh: std ``sqrt(1 / fan_in)`` (the book's
  simplified form) keeps the activations' spread constant across layers;
- **He**, for ReLU: std ``sqrt(2 / fan_in)``, twice the variance, because ReLU
  zeroes half of its inputs.

Values are drawn in float64 from a NumPy ``Generator`` and then cast, so the
same seed gives the same network in every precision.
"""

from __future__ import annotations

import math

import numpy as np


def fan_in(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape[1:]))


def normal(rng: np.random.Generator, shape: tuple[int, ...], std: float, dtype=np.float32) -> np.ndarray:
    return (rng.standard_normal(shape) * std).astype(dtype)


def xavier_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    return normal(rng, shape, math.sqrt(1.0 / fan_in(shape)), dtype)


def he_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    return normal(rng, shape, math.sqrt(2.0 / fan_in(shape)), dtype)


INITIALISERS = {"xavier": xavier_normal, "he": he_normal}


def init_weight(
    rng: np.random.Generator, shape: tuple[int, ...], scheme: str | float, dtype=np.float32
) -> np.ndarray:
    """``scheme``: ``"he"``, ``"xavier"`` or a fixed standard deviation."""
    if isinstance(scheme, str):
        try:
            return INITIALISERS[scheme](rng, shape, dtype)
        except KeyError:
            from deeper.errors import ConfigError

            raise ConfigError(f"unknown weight_init {scheme!r} (he, xavier or a float std)") from None
    return normal(rng, shape, float(scheme), dtype)
