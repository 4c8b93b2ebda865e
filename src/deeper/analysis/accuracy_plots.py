"""Figures of the accuracy toolkit: optimizer trajectories and loss curves, augmentation previews.

- :func:`optimizer_trajectories`: every registered optimizer from the same start on
  the book's f(x, y) = x^2/20 + y^2 (figure 6-8 of the book) and on Rosenbrock's
  valley, one panel per optimizer and function, over the function's contours;
- :func:`optimizer_loss_curves`: the training loss of each optimizer on a dataset
  with the same network, initial weights, batches and number of steps (the book's
  figure 6-9 compares SGD, Momentum, AdaGrad and Adam this way on MNIST);
- :func:`augment_preview`: originals next to augmented copies.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from deeper.analysis.plots import plt, save_figure


@dataclass(frozen=True)
class Surface:
    name: str
    title: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    start: tuple[float, float]
    minimum: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    steps: int
    lrs: dict[str, float]  # learning rate per optimizer (chosen so each path is readable)
    log_levels: bool = False


FUNCTIONS = {
    "book": Surface(
        "book",
        "f(x, y) = x²/20 + y²",
        lambda x, y: x**2 / 20 + y**2,
        (-7.0, 2.0),
        (0.0, 0.0),
        (-10, 10),
        (-5, 5),
        30,
        {
            "sgd": 0.95,
            "momentum": 0.1,
            "nesterov": 0.1,
            "adagrad": 1.5,
            "adadelta": 60.0,
            "rmsprop": 0.15,
            "adam": 0.3,
            "adamw": 0.3,
        },
    ),  # fmt: skip
    "rosenbrock": Surface(
        "rosenbrock",
        "Rosenbrock (1-x)² + 100(y-x²)²",
        lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
        (-1.5, 2.0),
        (1.0, 1.0),
        (-2, 2),
        (-1, 3),
        1000,
        {
            "sgd": 0.0015,
            "momentum": 0.0005,
            "nesterov": 0.0005,
            "adagrad": 0.3,
            "adadelta": 5.0,
            "rmsprop": 0.005,
            "adam": 0.05,
            "adamw": 0.05,
        },
        log_levels=True,
    ),  # fmt: skip
}


def trajectory(
    optimizer: str, fn: Callable, start: tuple[float, float], steps: int, lr: float | None = None
) -> np.ndarray:
    """Points ``(steps + 1, 2)`` visited by ``optimizer`` minimising ``fn(x, y)`` from ``start``.

    Weight decay is off for every optimizer (``adamw`` included) so the paths show the
    update rules alone.
    """
    from deeper.train.optim import create_optimizer

    p = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    opt = create_optimizer(optimizer, [p], lr=lr, weight_decay=0.0)
    points = [p.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        fn(p[0], p[1]).backward()
        opt.step()
        points.append(p.detach().clone())
    return torch.stack(points).numpy()


def optimizer_trajectories(
    path: str | os.PathLike, *, optimizers: list[str] | None = None, steps: int | None = None
) -> dict:
    """Draw every optimizer's path on each function of :data:`FUNCTIONS`; return the end points."""
    from deeper.train.optim import get_optimizer_entry, list_optimizers

    names = optimizers or list_optimizers()
    fig, axes = plt.subplots(
        len(FUNCTIONS), len(names), figsize=(2.6 * len(names), 2.5 * len(FUNCTIONS)), squeeze=False
    )
    summary: dict = {}
    for row, tf in zip(axes, FUNCTIONS.values()):
        xs, ys = np.meshgrid(np.linspace(*tf.xlim, 120), np.linspace(*tf.ylim, 120))
        zs = tf.fn(torch.from_numpy(xs), torch.from_numpy(ys)).numpy()
        levels = np.logspace(-1, 3.5, 15) if tf.log_levels else 15
        n_steps = steps or tf.steps
        summary[tf.name] = {}
        for ax, name in zip(row, names):
            lr = tf.lrs.get(name, get_optimizer_entry(name).default_lr)
            pts = trajectory(name, tf.fn, tf.start, n_steps, lr)
            end = tf.fn(torch.tensor(pts[-1, 0]), torch.tensor(pts[-1, 1])).item()
            summary[tf.name][name] = {"lr": lr, "steps": n_steps, "end": pts[-1].tolist(), "f_end": end}
            ax.contour(xs, ys, zs, levels=levels, colors="0.75", linewidths=0.6)
            ax.plot(pts[:, 0], pts[:, 1], "-o", color="tab:red", markersize=2, linewidth=0.8)
            ax.plot(*tf.minimum, "+", color="k", markersize=8)
            ax.set_xlim(*tf.xlim)
            ax.set_ylim(*tf.ylim)
            ax.set_title(f"{name} (lr {lr:g})\nf = {end:.3g} after {n_steps}", fontsize=8)
            ax.tick_params(labelsize=6)
        row[0].set_ylabel(tf.title, fontsize=8)
    fig.suptitle("optimizers from the same start (+ marks the minimum)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return summary


def optimizer_loss_curves(
    path: str | os.PathLike,
    *,
    data: str = "mnist",
    model: str = "mlp",
    steps: int = 2000,
    batch_size: int = 128,
    seed: int = 0,
    optimizers: list[str] | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    progress: bool | None = None,
) -> dict:
    """Train ``model`` for ``steps`` steps with each optimizer (default lr, same init and batches); plot the losses."""
    from deeper.data import BatchLoader, get_dataset_spec, load_dataset
    from deeper.models import create_model
    from deeper.runtime import resolve_device
    from deeper.tasks.classify import ClassificationTask
    from deeper.train.optim import create_optimizer, get_optimizer_entry, list_optimizers

    names = optimizers or list_optimizers()
    dev = resolve_device(device)
    spec = get_dataset_spec(data)
    c, h, _ = spec.image_shape
    train = load_dataset(data, "train", data_dir=data_dir).to(dev)
    task = ClassificationTask()
    curves: dict[str, list[float]] = {}
    bar = tqdm(total=steps * len(names), desc="optimizers", unit="step", file=sys.stderr,
               disable=not (sys.stderr.isatty() if progress is None else progress))  # fmt: skip
    for name in names:
        torch.manual_seed(seed)
        net = create_model(model, num_classes=spec.num_classes, in_chans=c, img_size=h).to(dev)
        opt = create_optimizer(name, net.parameters(), weight_decay=0.0)
        loader = BatchLoader(train, batch_size, shuffle=True, seed=seed)
        losses: list[float] = []
        epoch = 0
        while len(losses) < steps:
            loader.set_epoch(epoch)
            for batch in loader:
                out = task.loss({"net": net}, batch)
                opt.zero_grad()
                out.loss.backward()
                opt.step()
                losses.append(float(out.loss.detach()))
                bar.update(1)
                if len(losses) >= steps:
                    break
            epoch += 1
        curves[name] = losses
    bar.close()
    fig, ax = plt.subplots(figsize=(8, 5))
    window = max(1, steps // 50)
    for name, losses in curves.items():
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        lr = get_optimizer_entry(name).default_lr
        ax.plot(np.arange(window, len(losses) + 1), smooth, label=f"{name} (lr {lr:g})", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss (moving average of {window})")
    ax.set_title(f"{model} on {data}: batch {batch_size}, same initial weights and batches")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path)
    tail = max(1, steps // 10)
    return {
        name: {"lr": get_optimizer_entry(name).default_lr, "final_loss": float(np.mean(losses[-tail:]))}
        for name, losses in curves.items()
    }


def augment_preview(
    originals: torch.Tensor,
    copies: list[torch.Tensor],
    path: str | os.PathLike,
    *,
    title: str = "",
    labels: list[str] | None = None,
) -> None:
    """A grid: one row per image, the original (uint8 ``(N, C, H, W)``) then each augmented copy (float in [0, 1]).

    ``labels`` name the copies' columns (default ``copy 1``, ``copy 2``, ...).
    """
    n, cols = originals.shape[0], 1 + len(copies)
    fig, axes = plt.subplots(n, cols, figsize=(cols * 1.0, n * 1.0 + (0.5 if title else 0)), squeeze=False)
    for i in range(n):
        row = [originals[i].float() / 255.0] + [c[i].float().cpu() for c in copies]
        for j, (ax, img) in enumerate(zip(axes[i], row)):
            ax.axis("off")
            if img.shape[0] == 1:
                ax.imshow(img[0].numpy(), cmap="gray_r", vmin=0, vmax=1)
            else:
                ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
            if i == 0:
                ax.set_title("original" if j == 0 else labels[j - 1] if labels else f"copy {j}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    save_figure(fig, path)
