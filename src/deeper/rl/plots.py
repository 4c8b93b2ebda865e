"""Figures of DQN runs: the learning curve of one run, and predicted against realised values (over-estimation)."""

from __future__ import annotations

import os

from deeper.analysis.plots import plt, save_figure


def moving_average(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_learning_curve(ends: list[int], returns: list[float], evaluations: list[dict], path: str | os.PathLike,
                        *, title: str = "", solved_at: float | None = None) -> None:  # fmt: skip
    """Training episodes' returns (and their moving average) and the greedy evaluations (mean +- std), by env step."""
    fig, ax = plt.subplots(figsize=(7, 4))
    if returns:
        ax.plot(ends, returns, ".", color="0.7", markersize=2, label="training episode")
        ax.plot(ends, moving_average(returns, 20), "-", color="tab:blue", lw=1, label="training (last 20)")
    if evaluations:
        x = [e["env_steps"] for e in evaluations]
        m = [e["return"] for e in evaluations]
        s = [e["return_std"] for e in evaluations]
        ax.fill_between(
            x, [a - b for a, b in zip(m, s)], [a + b for a, b in zip(m, s)], color="tab:orange", alpha=0.2
        )
        ax.plot(x, m, "-o", color="tab:orange", markersize=3, label="greedy evaluation (mean +- std)")
    if solved_at is not None:
        ax.axhline(solved_at, color="tab:green", ls="--", lw=1, label=f"solved ({solved_at:g})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    save_figure(fig, path)
