"""The misclassified-image gallery (the book's figure 8-2)."""

from __future__ import annotations

import math
import os

import torch

from deeper.analysis.plots import plt, save_figure


def misclassified_gallery(
    images: torch.Tensor,
    true: torch.Tensor,
    pred: torch.Tensor,
    path: str | os.PathLike,
    *,
    classes: tuple[str, ...] | None = None,
    title: str = "",
    columns: int = 10,
    notes: list[str] | None = None,
) -> None:
    """A grid of ``images`` (uint8, (N, C, H, W)): true label top-left, prediction bottom-right.

    ``notes``, one per image, are written small at the bottom left (e.g. how many
    members of an ensemble get the image right).
    """
    if notes is not None and len(notes) != images.shape[0]:
        raise ValueError(f"{len(notes)} notes for {images.shape[0]} images")
    n = images.shape[0]
    cols = max(1, min(columns, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(cols * 1.0, rows * 1.05 + (0.4 + 0.2 * title.count("\n") if title else 0)),
        squeeze=False,
    )
    name = (lambda k: classes[k]) if classes else str
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i].cpu()
        if img.shape[0] == 1:
            ax.imshow(img[0].numpy(), cmap="gray_r", vmin=0, vmax=255)
        else:
            ax.imshow(img.permute(1, 2, 0).numpy())
        t, p = int(true[i]), int(pred[i])
        ax.text(
            0.02, 0.98, name(t), transform=ax.transAxes, va="top", ha="left", fontsize=8, color="tab:blue"
        )
        ax.text(
            0.98, 0.02, name(p), transform=ax.transAxes, va="bottom", ha="right", fontsize=8, color="tab:red"
        )
        if notes is not None:
            ax.text(
                0.02, 0.02, notes[i], transform=ax.transAxes, va="bottom", ha="left", fontsize=6, color="0.35"
            )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    save_figure(fig, path)
