"""Figures of the detection task: predictions on scenes, precision-recall curves per class, the anchors of a
region proposal network, and the speed story (latency against mAP)."""

from __future__ import annotations

import math
import os

import numpy as np

from deeper.analysis.plots import plt, save_figure


def draw_predictions(
    images, targets: list[dict], preds: list[dict], classes, path: str | os.PathLike, *, title: str = "",
    min_score: float = 0.3, per_row: int = 4, cell: float = 2.4,
) -> None:  # fmt: skip
    """Each scene with its true boxes (green, class below the box) and the predicted ones scoring at least
    ``min_score`` (red, class and score above)."""
    from matplotlib.patches import Rectangle

    n = len(images)
    per_row = max(1, min(per_row, n))
    rows = math.ceil(n / per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(cell * per_row, cell * rows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= n:
            ax.set_frame_on(False)
            continue
        img = np.asarray(images[k], dtype=np.float32)
        img = img[0] if img.ndim == 3 else img
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        h = img.shape[0]
        for (x1, y1, x2, y2), c in zip(targets[k]["boxes"].tolist(), targets[k]["labels"].tolist()):
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="#33dd55", lw=1.2))
            ax.text(x1, min(h - 1, y2 + 1), classes[c], color="#33dd55", fontsize=6, va="top")
        p = preds[k]
        for (x1, y1, x2, y2), c, s in zip(p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist()):
            if s < min_score:
                continue
            ax.add_patch(
                Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="#ff4040", lw=1.0, ls="--")
            )
            ax.text(x1, max(0, y1 - 1), f"{classes[c]} {s:.2f}", color="#ff6060", fontsize=6, va="bottom")
    fig.suptitle(title or f"true boxes (green) and predictions scoring >= {min_score} (red)", fontsize=9)
    save_figure(fig, path)


def plot_pr_curves(pr50, classes, path: str | os.PathLike, *, ap50=None, title: str = "") -> None:
    """Precision against recall at IoU 0.5, one curve per class (``pr50``: (C, 101) at the COCO recall points)."""
    pr = np.asarray(pr50, dtype=np.float64)
    recall = np.linspace(0, 1, pr.shape[1])
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    colours = plt.get_cmap("tab10").colors
    for c in range(pr.shape[0]):
        if np.isnan(pr[c]).all():
            continue
        label = classes[c] if ap50 is None or ap50[c] is None else f"{classes[c]} (AP {ap50[c]:.3f})"
        ax.plot(recall, pr[c], color=colours[c % 10], lw=1.2, label=label)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    ax.set_title(title or "precision-recall per class at IoU 0.5", fontsize=9)
    save_figure(fig, path)


def draw_anchors(
    image, anchors, path: str | os.PathLike, *, position=None, stride: int, title: str = ""
) -> None:
    """The anchors of one position (all 3 scales x 3 ratios) on a scene, and that position's neighbours' centres."""
    from matplotlib.patches import Rectangle

    img = np.asarray(image, dtype=np.float32)
    img = img[0] if img.ndim == 3 else img
    fig, ax = plt.subplots(figsize=(4.6, 4.6))
    ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    h, w = img.shape
    xs = np.arange(stride / 2, w, stride)
    ax.plot(*np.meshgrid(xs - 0.5, np.arange(stride / 2, h, stride) - 0.5), ".", color="#5599ff", ms=2)
    colours = ["#ff4040", "#ffcc00", "#33dd55"]
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(anchors).tolist()):
        ax.add_patch(
            Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec=colours[k // 3 % 3], lw=1.1)
        )
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def plot_speed_story(rows: list[dict], path: str | os.PathLike, *, title: str = "") -> None:
    """mAP@0.5 against per-image latency (log scale), one point per model: ``rows`` have model, latency_ms, map50."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for r in rows:
        ax.scatter(r["latency_ms"], r["map50"], s=30)
        ax.annotate(
            r["model"], (r["latency_ms"], r["map50"]), textcoords="offset points", xytext=(5, 4), fontsize=8
        )
    ax.set_xscale("log")
    ax.set_xlabel("latency per image, batch 1 (ms, log scale)")
    ax.set_ylabel("mAP@0.5")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)
