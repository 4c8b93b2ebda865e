"""Assembling a training run from a configuration: data, model, loaders, optimizer, schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from torch import nn

from deeper.data import BatchLoader, get_dataset_spec, load_dataset
from deeper.models import create_model, get_model_entry
from deeper.runtime import resolve_device, seed_everything, set_deterministic
from deeper.train.config import TrainConfig
from deeper.train.loop import Updater
from deeper.train.optim import create_optimizer, get_optimizer_entry
from deeper.train.schedule import create_schedule, list_schedules
from deeper.train.tasks import ClassificationTask, Task


def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.model}-{cfg.data}-{stamp}"


def default_val_size(n_train: int) -> int:
    return 5000 if n_train >= 50000 else max(1, n_train // 10)


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


@dataclass
class Run:
    """Everything ``fit`` assembles; exposed so tests, benchmarks and callbacks can use the pieces."""

    cfg: TrainConfig
    device: torch.device
    model: nn.Module
    task: Task
    train_loader: BatchLoader
    val_loader: BatchLoader | None
    test_loader: BatchLoader
    optimizer: torch.optim.Optimizer
    scheduler: object
    total_steps: int
    metadata: dict
    #: takes each optimisation step (see :class:`~deeper.train.loop.Updater`)
    updater: Updater | None = None
    #: the model to evaluate and save, when it is not ``model`` (e.g. an average of its weights)
    eval_model: nn.Module | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.updater is None:
            self.updater = Updater(self.optimizer, self.scheduler)

    @property
    def final_model(self) -> nn.Module:
        return self.eval_model if self.eval_model is not None else self.model


def build_run(cfg: TrainConfig) -> Run:
    """Data, model, task, loaders, optimizer and schedule for a resolved config."""
    get_model_entry(cfg.model)  # fail on a bad name before loading any data
    get_optimizer_entry(cfg.optimizer)
    if cfg.schedule not in list_schedules():
        create_schedule(cfg.schedule, None, 1)  # raises the helpful error
    device = resolve_device(cfg.device)
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    spec = get_dataset_spec(cfg.data)
    train_full = load_dataset(cfg.data, "train", data_dir=cfg.data_dir)
    test = load_dataset(cfg.data, "test", data_dir=cfg.data_dir)
    val_size = default_val_size(len(train_full)) if cfg.val_size is None else cfg.val_size
    train, val = train_full.split(val_size, seed=0) if val_size else (train_full, None)
    if cfg.subset is not None:
        train = train.subset(slice(0, cfg.subset))
    c, h, w = spec.image_shape
    kwargs = dict(cfg.model_kwargs)
    if h == w:
        kwargs.setdefault("img_size", h)
    model = create_model(cfg.model, num_classes=spec.num_classes, in_chans=c, **kwargs).to(device)
    channels_last = (
        cfg.channels_last if cfg.channels_last is not None else (device.type == "cpu" and has_conv(model))
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train, test = train.to(device), test.to(device)
    val = val.to(device) if val is not None else None
    train_loader = BatchLoader(
        train, cfg.batch_size, shuffle=True, seed=cfg.seed, channels_last=channels_last
    )
    val_loader = (
        BatchLoader(val, cfg.eval_batch_size, channels_last=channels_last) if val is not None else None
    )
    test_loader = BatchLoader(test, cfg.eval_batch_size, channels_last=channels_last)
    optimizer = create_optimizer(cfg.optimizer, model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs * len(train_loader)
    scheduler = create_schedule(cfg.schedule, optimizer, total_steps)
    task = ClassificationTask(label_smoothing=cfg.label_smoothing)
    metadata = {
        "model": cfg.model,
        "num_classes": spec.num_classes,
        "in_chans": c,
        "dataset": cfg.data,
        "classes": list(spec.classes),
        **({"img_size": kwargs["img_size"]} if "img_size" in kwargs else {}),
    }
    return Run(
        cfg,
        device,
        model,
        task,
        train_loader,
        val_loader,
        test_loader,
        optimizer,
        scheduler,
        total_steps,
        metadata,
    )
