"""Figures of image-to-image results: a grid of images with a title over each."""

from __future__ import annotations

import torch


def crop_centre(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` window of (..., H, W) (the whole image where smaller)."""
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top : top + size, left : left + size]


def image_grid(
    rows: list[list[tuple[str, torch.Tensor]]], path, *, title: str = "", cell: float = 2.2
) -> str:
    """Draw ``rows`` of ``(caption, image (C, H, W) or (1, C, H, W) in [0, 1])`` into ``path`` (PNG)."""
    from deeper.analysis.plots import plt, save_figure

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, cell * n_rows + (0.4 if title else 0)),
                             squeeze=False)  # fmt: skip
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.axis("off")
            if j >= len(row):
                continue
            caption, img = row[j]
            img = img[0] if img.ndim == 4 else img
            arr = img.detach().float().clamp(0, 1).cpu()
            if arr.shape[0] == 1:
                ax.imshow(arr[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(arr.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return str(path)
