"""Training curves as PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from deeper.fileio import write_bytes_atomic  # noqa: E402


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def plot_curves(
    history: list[dict],
    path: str | os.PathLike,
    title: str = "",
    metrics: tuple[str, ...] = ("loss", "accuracy"),
) -> None:
    """``metrics`` (one panel each; loss and accuracy by default) per epoch for every split in ``history`` rows."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for split, style in (("train", "-o"), ("val", "-s"), ("test", "-^")):
            key = f"{split}_{metric}"
            pts = [(e, row[key]) for e, row in zip(epochs, history) if row.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), style, label=split, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
