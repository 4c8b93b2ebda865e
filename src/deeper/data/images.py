"""Reading user images and preparing them the way MNIST was prepared.

MNIST digits are white on black, size-normalised to fit a 20x20 box (keeping
the aspect ratio) and centred by their centre of mass in a 28x28 frame.
:func:`mnist_style` does the same to any photo or drawing of a digit: it works
out the polarity (dark ink on light paper is inverted), crops to the ink, scales
the longest side to 20 pixels and shifts the centre of mass to the middle.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from deeper.errors import DataError

#: images larger than this are refused before they are decoded (a 20000x20000 PNG would need 1.6 GB)
MAX_PIXELS = 40_000_000


def read_image(path: str | os.PathLike, channels: int = 1) -> np.ndarray:
    """``(H, W)`` grey (``channels=1``) or ``(H, W, 3)`` RGB as float32 in [0, 1].

    The size in the image's header is checked before any pixel is decoded (:data:`MAX_PIXELS`).
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(
                    f"{path}: {im.width}x{im.height} pixels, more than the {MAX_PIXELS:,} an image may have here"
                )
            im.load()
            im = im.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: image not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not an image") from None
    except Image.DecompressionBombError as e:  # Pillow's own check, for sizes past twice its limit
        count = re.search(r"\((\d+) pixels\)", str(e))
        pixels = f"{int(count.group(1)):,} pixels" if count else "too many pixels"
        raise DataError(f"{path}: {pixels}, more than the {MAX_PIXELS:,} an image may have here") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(
            f"{path}: not a readable image ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    if im.width < 1 or im.height < 1:
        raise DataError(f"{path}: empty image")
    return np.asarray(im, dtype=np.float32) / 255.0


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (H, W) or (H, W, 3) float [0, 1] to ``size`` = (h, w) with antialiasing."""
    im = Image.fromarray(np.clip(arr * 255.0, 0, 255).round().astype(np.uint8))
    return np.asarray(im.resize((size[1], size[0]), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0


def _border(g: np.ndarray) -> np.ndarray:
    return np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])


def mnist_style(gray: np.ndarray, *, box: int = 20, frame: int = 28) -> np.ndarray:
    """A (28, 28) float image in [0, 1], bright digit on black, centred like MNIST."""
    g = np.asarray(gray, dtype=np.float32)
    if np.median(_border(g)) > 0.5:  # light background: dark ink on paper
        g = 1.0 - g
    g = np.clip(g - np.median(_border(g)), 0, None)  # remove the background level
    if g.max() > 0:
        g = g / g.max()
    ink = np.argwhere(g > 0.2)
    if ink.size == 0:
        return np.zeros((frame, frame), dtype=np.float32)
    (r0, c0), (r1, c1) = ink.min(0), ink.max(0) + 1
    crop = g[r0:r1, c0:c1]
    h, w = crop.shape
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    digit = _resize(crop, (nh, nw))
    out = np.zeros((frame, frame), dtype=np.float32)
    top, left = (frame - nh) // 2, (frame - nw) // 2
    out[top : top + nh, left : left + nw] = digit
    total = out.sum()
    if total > 0:
        rows, cols = np.indices(out.shape)
        cy, cx = (rows * out).sum() / total, (cols * out).sum() / total
        dy = int(round(frame / 2 - 0.5 - cy))
        dx = int(round(frame / 2 - 0.5 - cx))
        dy = int(np.clip(dy, -top, frame - nh - top))
        dx = int(np.clip(dx, -left, frame - nw - left))
        out = np.roll(out, (dy, dx), axis=(0, 1))
    return out


def prepare_image(path: str | os.PathLike, shape: tuple[int, int, int]) -> np.ndarray:
    """``(C, H, W)`` float32 input for a model expecting ``shape``.

    One-channel 28x28 models get MNIST-style preprocessing; others a plain resize.
    """
    c, h, w = shape
    if c == 1 and (h, w) == (28, 28):
        return mnist_style(read_image(path, 1))[None]
    img = _resize(read_image(path, c), (h, w))
    return img[None] if c == 1 else img.transpose(2, 0, 1).copy()
