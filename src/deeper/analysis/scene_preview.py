"""A picture of digit scenes: each image with its boxes and labels, its class mask beside it, a caption below."""

from __future__ import annotations

import math
import os
import textwrap

import numpy as np

from deeper.analysis.plots import plt, save_figure


def mask_overlay(image: np.ndarray, class_mask: np.ndarray) -> np.ndarray:
    """RGB float (H, W, 3): the grey image, tinted with a tab10 colour per class on the mask."""
    grey = np.repeat(image[..., None].astype(np.float32) / 255, 3, axis=2)
    colours = np.asarray(plt.get_cmap("tab10").colors, dtype=np.float32)
    on = class_mask > 0
    rgb = 0.25 * grey
    rgb[on] = 0.35 * grey[on] + 0.65 * colours[(class_mask[on].astype(np.int64) - 1) % 10]
    return rgb


def draw_scenes(
    panels, path: str | os.PathLike, *, per_row: int = 4, dpi: int = 100, cell: float = 1.6
) -> None:
    """``panels``: ``(title, SceneDataset)`` pairs; every scene of each is drawn.

    A scene is two pictures side by side: the image with its boxes and class names,
    and its class mask over the image; under them one of its captions (scene ``i`` of
    panel ``p`` shows caption ``(i + 3 p) % len(captions)``, so a few scenes show every
    form).  ``per_row`` scenes per row.
    """
    from matplotlib.patches import Rectangle

    panels = [(title, ds.to("cpu")) for title, ds in panels]
    per_row = max(1, min(per_row, max(len(ds) for _, ds in panels)))
    rows = [(p, r) for p, (_, ds) in enumerate(panels) for r in range(math.ceil(len(ds) / per_row))]
    ratios = [panels[p][1].image_shape[1] / panels[p][1].image_shape[2] for p, _ in rows]
    fig, axes = plt.subplots(
        len(rows),
        2 * per_row,
        figsize=(2 * cell * per_row, sum(cell * r + 0.55 for r in ratios)),
        gridspec_kw={"height_ratios": ratios, "wspace": 0.04},
        squeeze=False,
    )
    for row, (p, r) in enumerate(rows):
        title, ds = panels[p]
        h, w = ds.image_shape[1:]
        font = 7 if ds.max_objects <= 5 else 5
        for c in range(per_row):
            left, right = axes[row, 2 * c], axes[row, 2 * c + 1]
            i = r * per_row + c
            for ax in (left, right):
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_frame_on(i < len(ds))
            if i >= len(ds):
                continue
            image = ds.images[i, 0].numpy()
            left.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            k = int(ds.counts[i])
            for (x1, y1, x2, y2), lab in zip(
                ds.boxes[i, :k].tolist(), ds.labels[i, :k].tolist(), strict=True
            ):
                colour = plt.get_cmap("tab10")(lab % 10)
                left.add_patch(
                    Rectangle(
                        (x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1
                    )
                )
                left.text(
                    x1 - 0.5, y1 - 1, ds.classes[lab], color="white", fontsize=font, va="bottom",
                    bbox={"facecolor": colour, "edgecolor": "none", "pad": 0.5, "alpha": 0.8},
                )  # fmt: skip
            left.set_xlim(-0.5, w - 0.5)
            left.set_ylim(h - 0.5, -0.5)
            right.imshow(mask_overlay(image, ds.class_masks[i].numpy()), interpolation="nearest")
            captions = ds.captions[i]
            text = captions[(i + 3 * p) % len(captions)] if captions else ""
            left.set_xlabel("\n".join(textwrap.wrap(text, 44)), fontsize=7, loc="left")
        if r == 0:
            axes[row, 0].set_title(title, loc="left", fontsize=9)
    save_figure(fig, path, dpi=dpi)
