"""Small plotting helpers shared by the experiments (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from deeper.analysis.plots import plt, save_figure
from deeper.experiments.stats import mean_sd

__all__ = ["bars", "band", "new", "paired_lines", "plt", "save", "save_figure"]

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def new(ncols: int = 1, nrows: int = 1, *, width: float = 5.0, height: float = 3.8):
    """A figure with ``nrows x ncols`` panels (a flat list of axes)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, [ax for row in axes for ax in row]


def save(fig, path, title: str = "") -> None:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def paired_lines(ax, groups: dict[str, Sequence[float]], *, ylabel: str = "", scale: float = 1.0) -> None:
    """One grey line per seed across the conditions of ``groups`` (same order of seeds), the means on top."""
    names = list(groups)
    n = min(len(v) for v in groups.values())
    for i in range(n):
        ax.plot(
            range(len(names)), [groups[k][i] * scale for k in names], "-o", color="0.7", markersize=3, lw=1
        )
    means = [mean_sd(groups[k])[0] * scale for k in names]
    ax.plot(range(len(names)), means, "-s", color=COLORS[0], lw=2, markersize=6, label="mean")
    ax.set_xticks(
        range(len(names)),
        names,
        rotation=20 if len(names) > 3 else 0,
        ha="right" if len(names) > 3 else "center",
    )
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def bars(ax, groups: dict[str, Sequence[float]], *, ylabel: str = "", scale: float = 1.0,
         annotate: str | None = "{:.3g}") -> None:  # fmt: skip
    """A bar per group (its mean, an error bar of one standard deviation), the values as dots."""
    names = list(groups)
    for i, k in enumerate(names):
        vals = [v * scale for v in groups[k]]
        m, sd = mean_sd(vals)
        ax.bar(i, m, yerr=sd if len(vals) > 1 else None, color=COLORS[i % len(COLORS)], alpha=0.6, capsize=3)
        ax.plot([i] * len(vals), vals, "k.", markersize=4)
        if annotate:
            ax.annotate(annotate.format(m), (i, m), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 3), textcoords="offset points")  # fmt: skip
    ax.set_xticks(
        range(len(names)),
        names,
        rotation=20 if len(names) > 3 else 0,
        ha="right" if len(names) > 3 else "center",
    )
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")


def band(ax, x: Sequence[float], runs: Sequence[Sequence[float]], *, label: str = "", color=None,
         style: str = "-o", scale: float = 1.0) -> None:  # fmt: skip
    """The mean of several runs over ``x`` with a band of one standard deviation."""
    cols = list(zip(*runs))
    stats = [
        mean_sd([v * scale for v in c if v is not None and math.isfinite(v)] or [math.nan]) for c in cols
    ]
    m = [s[0] for s in stats]
    sd = [s[1] for s in stats]
    xs = list(x)[: len(m)]
    line = ax.plot(xs, m, style, label=label, color=color, markersize=3)[0]
    if len(runs) > 1:
        ax.fill_between(xs, [a - b for a, b in zip(m, sd)], [a + b for a, b in zip(m, sd)],
                        color=line.get_color(), alpha=0.15)  # fmt: skip
