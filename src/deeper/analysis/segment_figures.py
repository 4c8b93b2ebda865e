"""Pictures of segmentations: scenes with their true and predicted class masks, and per-class IoU bars.

- :func:`draw_segmentations`: one row per scene: the input, the true mask over it,
  then each model's predicted mask over it (tab10 colour per digit class, as
  ``deeper scenes preview`` draws masks), each prediction's mIoU on that scene in
  its top-left corner;
- :func:`plot_class_iou`: the IoU of every class, one group of bars per class and
  one bar per model.
"""

from __future__ import annotations

import os

import numpy as np

from deeper.analysis.plots import plt, save_figure
from deeper.analysis.scene_preview import mask_overlay


def scene_miou(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    """Mean IoU over the classes present in ``pred`` or ``truth`` of one scene."""
    ious = []
    for c in range(num_classes):
        p, t = pred == c, truth == c
        union = np.logical_or(p, t).sum()
        if union:
            ious.append(np.logical_and(p, t).sum() / union)
    return float(np.mean(ious)) if ious else 1.0


def draw_segmentations(
    images: np.ndarray,
    truth: np.ndarray,
    predictions: list[tuple[str, np.ndarray]],
    path: str | os.PathLike,
    *,
    num_classes: int = 11,
    title: str | None = None,
    cell: float = 1.7,
    dpi: int = 110,
) -> None:
    """``images`` uint8 (N, H, W), ``truth`` (N, H, W) class masks (0 = background), ``predictions``
    ``(name, masks (N, H, W))`` pairs: a grid of N rows, columns input | truth | each prediction."""
    n, h, w = truth.shape
    cols = 2 + len(predictions)
    fig, axes = plt.subplots(n, cols, figsize=(cols * cell * w / h, n * cell + 0.5), squeeze=False)
    for i in range(n):
        panels = [
            ("input", np.repeat(images[i][..., None] / 255.0, 3, axis=2), None),
            ("truth", mask_overlay(images[i], truth[i]), None),
        ]
        for name, masks in predictions:
            panels.append(
                (name, mask_overlay(images[i], masks[i]), scene_miou(masks[i], truth[i], num_classes))
            )
        for j, (label, rgb, score) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(rgb, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label, fontsize=8, pad=3)
            if score is not None:
                ax.text(1, 1, f"{score:.2f}", color="white", fontsize=6, ha="left", va="top")
    height = n * cell + 0.5
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2, rect=(0, 0, 1, 1 - 0.3 / height if title else 1))
    save_figure(fig, path, dpi=dpi)


def plot_class_iou(
    ious: dict[str, dict[str, float | None]], path: str | os.PathLike, *, title: str | None = None
) -> None:
    """``ious``: model name -> {class name: IoU (None: the class never appeared)}, drawn as grouped bars."""
    models = list(ious)
    classes = list(next(iter(ious.values()))) if ious else []
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(min(10.0, 1.5 + 0.45 * len(classes) * (1 + 0.25 * len(models))), 3.4))
    for k, name in enumerate(models):
        values = [ious[name].get(c) for c in classes]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(x + (k - (len(models) - 1) / 2) * width, heights, width, label=name)
        if len(models) == 1:
            for b, v in zip(bars, values):
                text = f"{v:.2f}" if v is not None else "-"
                ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01, text, ha="center", fontsize=6)
    ax.set_xticks(x, classes, fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("IoU")
    ax.grid(axis="y", alpha=0.3)
    if len(models) > 1:
        ax.legend(
            fontsize=7, ncol=min(len(models), 6), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False
        )
    if title:
        ax.set_title(title, fontsize=9, pad=18 if len(models) > 1 else 6)
    fig.tight_layout()
    save_figure(fig, path)
