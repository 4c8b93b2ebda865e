"""Pictures of captioning: scenes with the captions a model wrote, and its attention word by word.

- :func:`draw_captions`: a grid of scenes, each with its caption below it (green when it
  is true of the scene, red when not; one list of captions per model when several are
  compared);
- :func:`draw_attention`: one panel per word of a caption: the scene, dimmed, with the
  attention of that step (the ``grid x grid`` weights, upsampled bilinearly to the
  image) in yellow on top, the word and the largest weight above it.
"""

from __future__ import annotations

import math
import os
import textwrap

import numpy as np

from deeper.analysis.plots import plt, save_figure

OK, WRONG = "#1a7f37", "#c62828"


def draw_captions(
    images: np.ndarray,
    captions: list[str] | list[tuple[str, list[str], list[bool]]],
    ok: list[bool] | None,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    columns: int = 4,
    cell: float = 2.0,
    dpi: int = 110,
) -> None:
    """``images`` (N, H, W) grey (uint8 or [0, 1]); ``captions``: one per image (coloured by ``ok``), or
    ``(model name, captions, ok)`` triples to show several models' captions under each image."""
    sets = [("", list(captions), ok)] if not captions or isinstance(captions[0], str) else list(captions)
    n = len(images)
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    text_h = 0.38 * len(sets) * 2
    fig, axes = plt.subplots(rows, columns, figsize=(columns * cell * 1.35, rows * (cell + text_h) + 0.4),
                             squeeze=False)  # fmt: skip
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(images[i] / scale, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        y = -0.04
        for name, texts, flags in sets:
            colour = "black" if flags is None else (OK if flags[i] else WRONG)
            label = f"{name}: {texts[i]}" if name else texts[i]
            wrapped = "\n".join(textwrap.wrap(label, 30)) or "(empty)"
            ax.text(
                0.5, y, wrapped, transform=ax.transAxes, ha="center", va="top", fontsize=7.5, color=colour
            )
            y -= 0.13 * (wrapped.count("\n") + 1) + 0.04
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(hspace=0.25 + text_h / cell, wspace=0.1)
    save_figure(fig, path, dpi=dpi)


def upsample(weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (g, g) attention map bilinearly resized to ``shape`` (cell centres aligned)."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(weights, dtype=np.float32))[None, None]
    return F.interpolate(t, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()


def draw_attention(
    image: np.ndarray,
    words: list[str],
    attention: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    columns: int = 6,
    cell: float = 1.6,
    dpi: int = 110,
) -> None:
    """``image`` (H, W) grey; ``attention`` (T, g, g), the weights of each step (summing to 1);
    ``words``: the word written at each step (at most T are drawn)."""
    image = np.asarray(image, dtype=np.float32)
    image = image / 255.0 if image.max() > 1.0 else image
    t = min(len(words), len(attention))
    columns = max(1, min(columns, t + 1))
    rows = math.ceil((t + 1) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * cell, rows * (cell + 0.3) + 0.3), squeeze=False
    )
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k > t:
            ax.axis("off")
            continue
        if k == 0:
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title("scene", fontsize=8)
            continue
        a = attention[k - 1]
        heat = upsample(a / max(float(a.max()), 4.0 / a.size), image.shape)  # uniform attention stays dim
        rgb = np.repeat(0.45 * image[..., None], 3, axis=2)
        rgb = np.clip(rgb + heat[..., None] * np.array([0.95, 0.85, 0.1], dtype=np.float32), 0, 1)
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(f"{words[k - 1]}  ({float(a.max()):.2f})", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path, dpi=dpi)
