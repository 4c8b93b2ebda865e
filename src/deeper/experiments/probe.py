"""Small training runs for experiments: many short runs of small networks, on the engine's own parts.

:func:`train_classifier` trains any ``nn.Module`` on an in-memory dataset with
deeper's batch loader, optimizers, schedules, regularizing transforms and
training loop (:func:`deeper.train.train_one_epoch`), without a run folder:
an experiment trains dozens of networks and keeps only numbers.  Experiments
that train registered models with a recipe use :func:`deeper.fit` instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import nn

from deeper.data import BatchLoader, ImageDataset


def subset(ds: ImageDataset, n: int | None, *, seed: int = 0) -> ImageDataset:
    """``n`` images of ``ds`` drawn without replacement with ``seed`` (all of them when ``n`` is None)."""
    if n is None or n >= len(ds):
        return ds
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return ds.subset(idx)


def classes_subset(ds: ImageDataset, classes: list[int], *, relabel: bool = True) -> ImageDataset:
    """The images of ``ds`` whose label is in ``classes`` (relabelled 0..k-1 in that order)."""
    from dataclasses import replace

    keep = torch.isin(ds.labels, torch.tensor(classes))
    part = ds.subset(keep.nonzero().flatten())
    if not relabel:
        return part
    lut = torch.full((int(ds.labels.max()) + 1,), -1, dtype=torch.long)
    lut[torch.tensor(classes)] = torch.arange(len(classes))
    return replace(part, labels=lut[part.labels], classes=tuple(ds.classes[c] for c in classes))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.inference_mode()
def evaluate_on(model: nn.Module, ds: ImageDataset, *, device="cpu", batch_size: int = 1000,
                transform: Callable | None = None, dtype: torch.dtype = torch.float32) -> dict:  # fmt: skip
    """Loss, accuracy and per-image correctness of ``model`` on ``ds`` (eval mode).

    ``transform(x)`` degrades the float inputs first (noise, blur ...); ``dtype`` is the
    inputs' precision (the model must already be in it).
    """
    was = model.training
    model.eval()
    loss_sum, correct = 0.0, []
    for x, y in BatchLoader(ds.to(device), batch_size, dtype=dtype):
        if transform is not None:
            x = transform(x)
        logits = model(x).float()
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct.append((logits.argmax(1) == y).cpu())
    model.train(was)
    c = torch.cat(correct)
    return {"loss": loss_sum / len(ds), "accuracy": float(c.float().mean()), "correct": c}


def train_classifier(
    model: nn.Module,
    train: ImageDataset,
    *,
    epochs: int,
    batch_size: int,
    optimizer: str = "adam",
    lr: float | None = None,
    schedule: str = "constant",
    weight_decay: float | None = None,
    label_smoothing: float = 0.0,
    transform=None,
    weight_noise: float = 0.0,
    seed: int = 0,
    device="cpu",
    track: dict[str, ImageDataset] | None = None,
    optimizer_kwargs: dict | None = None,
    schedule_kwargs: dict | None = None,
    max_seconds: float | None = None,
) -> dict:
    """Train ``model`` on ``train``; return its history and the time it took.

    ``track``: datasets scored (loss, accuracy; eval mode) after every epoch, as
    ``{"name": dataset}``; each history row holds ``<name>_loss`` and
    ``<name>_accuracy`` besides the epoch's running training figures
    (``fit_loss``, ``fit_accuracy``: measured during the epoch, with dropout and
    augmentation on).  ``max_seconds`` stops after the epoch that passes it.
    """
    from deeper.tasks.classify import ClassificationTask
    from deeper.train import LoopState, Stepper, create_optimizer, create_schedule, train_one_epoch

    device = torch.device(device)
    model.to(device)
    loader = BatchLoader(train.to(device), batch_size, shuffle=True, seed=seed, transform=transform)
    opt = create_optimizer(optimizer, model.parameters(), lr=lr, weight_decay=weight_decay,
                           **(optimizer_kwargs or {}))  # fmt: skip
    steps = loader.steps_per_epoch
    sched = create_schedule(schedule, opt, epochs * steps, steps_per_epoch=steps, **(schedule_kwargs or {}))
    stepper = Stepper.single(opt, sched, weight_noise=weight_noise)
    task = ClassificationTask(label_smoothing=label_smoothing, num_classes=train.num_classes)
    state = LoopState()
    history = []
    seconds = 0.0
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        state.epoch, state.step_in_epoch, state.epoch_sums, state.epoch_count = epoch, 0, {}, 0
        start = time.perf_counter()
        fit = train_one_epoch(model, task, loader, stepper=stepper, state=state)
        seconds += time.perf_counter() - start
        row = {"epoch": epoch + 1, "fit_loss": fit.get("loss"), "fit_accuracy": fit.get("accuracy"),
               "seconds": seconds}  # fmt: skip
        for name, ds in (track or {}).items():
            r = evaluate_on(model, ds, device=device)
            row[f"{name}_loss"], row[f"{name}_accuracy"] = r["loss"], r["accuracy"]
        history.append(row)
        if not math.isfinite(row["fit_loss"] or 0.0):
            break
        if max_seconds is not None and seconds > max_seconds:
            break
    return {"history": history, "train_seconds": seconds, "steps": state.global_step, "epochs": len(history)}


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with the global RNG seeded (the same initial weights for the same seed)."""
    torch.manual_seed(seed)
    return build()


# ----------------------------------------------------------------------------- small networks


def conv_block(cin: int, cout: int, kernel: int, *, norm: bool = False) -> list[nn.Module]:
    """A same-size convolution (``kernel`` odd), batch norm if asked, ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return layers


def stage_net(
    stages: list[list[int]],
    widths: list[int],
    *,
    in_chans: int = 1,
    num_classes: int = 10,
    img_size: int = 28,
    norm: bool = False,
) -> nn.Sequential:
    """A plain CNN of stages: stage ``i`` is convolutions of kernels ``stages[i]`` at width ``widths[i]``,
    then a 2x2 max pool; then a linear classifier on the flattened features.

    ``stage_net([[5], [5]], [16, 32])`` and ``stage_net([[3, 3], [3, 3]], [16, 32])`` see the same
    receptive field, the second with 18/25 of the weights of each (later) convolution.
    """
    layers: list[nn.Module] = []
    c, size = in_chans, img_size
    for kernels, w in zip(stages, widths):
        for k in kernels:
            layers += conv_block(c, w, k, norm=norm)
            c = w
        layers.append(nn.MaxPool2d(2))
        size //= 2
    layers += [nn.Flatten(), nn.Linear(c * size * size, num_classes)]
    return nn.Sequential(*layers)


def mlp(
    sizes: list[int], *, in_features: int = 784, num_classes: int = 10, dropout: float = 0.0
) -> nn.Sequential:
    """Flatten, then ``Linear-ReLU`` layers of ``sizes`` (dropout after each if asked), then the classifier."""
    layers: list[nn.Module] = [nn.Flatten()]
    c = in_features
    for h in sizes:
        layers += [nn.Linear(c, h), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        c = h
    layers.append(nn.Linear(c, num_classes))
    return nn.Sequential(*layers)


def last_row(result: dict) -> dict:
    return result["history"][-1]


def resize(ds: ImageDataset, size: int | None) -> ImageDataset:
    """``ds`` with its images scaled to ``size`` x ``size`` (area averaging; unchanged when ``size`` is None)."""
    from dataclasses import replace

    if size is None or ds.image_shape[1:] == (size, size):
        return ds
    x = nn.functional.interpolate(ds.images.float(), size=(size, size), mode="area")
    return replace(ds, images=x.round().clamp(0, 255).to(torch.uint8))


def data_split(ctx) -> tuple[ImageDataset, ImageDataset]:
    """The profile's ``(train, test)``: ``data`` with ``train_images``/``test_images`` drawn from it (seed 0),
    scaled to ``img_size`` when the profile gives one (quick profiles: 14x14, a quarter of the work)."""
    p = ctx.params
    train = subset(ctx.dataset(p["data"], "train"), p.get("train_images"))
    test = subset(ctx.dataset(p["data"], "test"), p.get("test_images"))
    return resize(train, p.get("img_size")), resize(test, p.get("img_size"))
