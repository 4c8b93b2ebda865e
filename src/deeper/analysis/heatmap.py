"""Class heat maps of a convolutionalized classifier over a canvas of several images (notes 004, FCN).

:func:`digit_canvas` tiles test images into one larger image; the fully
convolutional copy of a classifier (:func:`deeper.models.convolutionalize`)
turns it into a map of class probabilities, one position per ``stride`` pixels,
each position scoring the training-size window whose top-left corner is at
``(i * stride, j * stride)``.  :func:`read_cells` reads the class of the window
aligned with each tile, and :func:`plot_heatmap` draws the canvas, what was read,
and one probability map per class, as a PNG.
"""

from __future__ import annotations

import os

import torch

from deeper.data.dataset import ImageDataset
from deeper.errors import ConfigError
from deeper.models.convolutionalize import FullyConvolutional


def digit_canvas(
    ds: ImageDataset, rows: int, cols: int, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(canvas uint8 (C, rows*H, cols*W), labels (rows, cols), indices)``: random images of ``ds`` tiled."""
    if rows < 1 or cols < 1:
        raise ConfigError(f"the grid needs at least one row and column, got {rows}x{cols}")
    if rows * cols > len(ds):
        raise ConfigError(f"{ds.name} has only {len(ds)} images for a {rows}x{cols} grid")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[: rows * cols]
    images = ds.images[idx.to(ds.images.device)].cpu()
    c, h, w = images.shape[1:]
    canvas = images.reshape(rows, cols, c, h, w).permute(2, 0, 3, 1, 4).reshape(c, rows * h, cols * w)
    return canvas, ds.labels[idx.to(ds.labels.device)].cpu().reshape(rows, cols), idx


@torch.inference_mode()
def class_heatmap(fcn: FullyConvolutional, canvas: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(classes, h, w)`` of every window of a uint8 ``(C, H, W)`` canvas."""
    p = next(fcn.parameters())
    x = canvas.to(device=p.device, dtype=p.dtype).unsqueeze(0) / 255.0
    return torch.softmax(fcn.eval()(x)[0].float(), dim=0).cpu()


def read_cells(
    probs: torch.Tensor, stride: int, cell: tuple[int, int], grid: tuple[int, int]
) -> torch.Tensor:
    """The most probable class of the map position aligned with each tile: ``(rows, cols)``."""
    _, h, w = probs.shape
    rows, cols = grid
    out = torch.empty(rows, cols, dtype=torch.long)
    for r in range(rows):
        for c in range(cols):
            i = min(h - 1, int(r * cell[0] / stride + 0.5))  # the nearest window, halves rounded up
            j = min(w - 1, int(c * cell[1] / stride + 0.5))
            out[r, c] = probs[:, i, j].argmax()
    return out


def plot_heatmap(
    canvas: torch.Tensor,
    probs: torch.Tensor,
    stride: int,
    window: tuple[int, int],
    path: str | os.PathLike,
    *,
    classes: tuple[str, ...] | list[str],
    read: torch.Tensor | None = None,
    true: torch.Tensor | None = None,
    title: str = "",
) -> None:
    """The canvas with what was read per tile, then one probability map per class over the canvas."""
    from deeper.analysis.plots import plt, save_figure

    k, h, w = probs.shape
    img = canvas.float().permute(1, 2, 0).squeeze(-1).numpy() / 255.0
    grey = canvas.shape[0] == 1
    height, width = canvas.shape[1:]
    # map position (i, j) scores the window whose centre is at (i * stride + wh / 2, j * stride + ww / 2)
    extent = (
        window[1] / 2 - stride / 2 - 0.5,
        (w - 1) * stride + window[1] / 2 + stride / 2 - 0.5,
        (h - 1) * stride + window[0] / 2 + stride / 2 - 0.5,
        window[0] / 2 - stride / 2 - 0.5,
    )
    ncols = min(5, k)
    nrows = 1 + (k + ncols - 1) // ncols
    small_w = 2.6
    small_h = small_w * height / width + 0.35
    top = min(3.0, ncols * 0.8)  # the canvas panel is this many class panels tall
    fig = plt.figure(figsize=(small_w * ncols, small_h * (top + nrows - 1) + 0.4))
    grid = fig.add_gridspec(nrows, ncols, height_ratios=[top] + [1] * (nrows - 1))
    ax0 = fig.add_subplot(grid[0, :])
    ax0.imshow(img, cmap="gray" if grey else None, vmin=0, vmax=1)
    if read is not None:
        cell_h, cell_w = height // read.shape[0], width // read.shape[1]
        for r in range(read.shape[0]):
            for c in range(read.shape[1]):
                ok = true is None or int(read[r, c]) == int(true[r, c])
                ax0.text(
                    c * cell_w + 2, r * cell_h + 2, classes[int(read[r, c])], va="top", ha="left", fontsize=9,
                    color="lime" if ok else "red", fontweight="bold",
                )  # fmt: skip
    ax0.set_title(title or "canvas and the class read at each tile", fontsize=10)
    ax0.axis("off")
    for c in range(k):
        ax = fig.add_subplot(grid[1 + c // ncols, c % ncols])
        ax.imshow(img, cmap="gray" if grey else None, vmin=0, vmax=1)
        ax.imshow(
            probs[c].numpy(),
            cmap="inferno",
            vmin=0,
            vmax=1,
            alpha=0.65,
            extent=extent,
            interpolation="nearest",
        )
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_title(f"P({classes[c]})", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)
