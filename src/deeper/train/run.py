"""Assembling a training run from a configuration: data, model, loaders, optimizer, schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from torch import nn

from deeper.data import BatchLoader, ImageDataset, get_dataset_spec, load_dataset
from deeper.models import create_model, get_model_entry
from deeper.runtime import resolve_device, seed_everything, set_deterministic
from deeper.train import average  # noqa: F401 (registers the --ema callback)
from deeper.train.config import TrainConfig
from deeper.train.cv import kfold_split
from deeper.train.ensemble import bootstrap_resample
from deeper.train.loop import Updater
from deeper.train.optim import create_optimizer, get_optimizer_entry
from deeper.train.regularize import build_train_transform
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
    #: more entries for ``result.json`` (set by callbacks, e.g. the raw weights' test accuracy under --ema)
    extras: dict = field(default_factory=dict)
    #: mixed precision of the training steps (a :class:`deeper.accel.amp.AmpPolicy`)
    amp: object = None
    #: the DDP wrapper the loop trains through when distributed (``model`` stays the bare module)
    ddp_model: nn.Module | None = None
    rank: int = 0
    world_size: int = 1

    def __post_init__(self):
        if self.updater is None:
            self.updater = Updater(
                self.optimizer, self.scheduler, amp=self.amp,
                clip_grad=self.cfg.optim.clip_grad, weight_noise=self.cfg.regularize.weight_noise or 0.0,
            )  # fmt: skip

    @property
    def train_model(self) -> nn.Module:
        return self.ddp_model if self.ddp_model is not None else self.model

    @property
    def is_main(self) -> bool:
        """Rank 0 (or the only process): the one that logs and writes."""
        return self.rank == 0

    @property
    def final_model(self) -> nn.Module:
        return self.eval_model if self.eval_model is not None else self.model


def split_data(cfg: TrainConfig) -> tuple[ImageDataset, ImageDataset | None, ImageDataset]:
    """The (train, val, test) datasets of a resolved config, before any resampling of train."""
    train_full = load_dataset(cfg.data, "train", data_dir=cfg.run.data_dir)
    test = load_dataset(cfg.data, "test", data_dir=cfg.run.data_dir)
    val_size = default_val_size(len(train_full)) if cfg.sampling.val_size is None else cfg.sampling.val_size
    if cfg.sampling.folds is not None:  # k-fold cross-validation (deeper cv): validate on one fold
        train, val = kfold_split(train_full, cfg.sampling.folds, cfg.sampling.fold)
    else:
        train, val = train_full.split(val_size, seed=0) if val_size else (train_full, None)
    if cfg.sampling.subset is not None:
        train = train.subset(slice(0, cfg.sampling.subset))
    return train, val, test


def build_run(cfg: TrainConfig) -> Run:
    """Data, model, task, loaders, optimizer and schedule for a resolved config."""
    get_model_entry(cfg.model)  # fail on a bad name before loading any data
    get_optimizer_entry(cfg.optim.optimizer)
    if cfg.optim.schedule not in list_schedules():
        create_schedule(cfg.optim.schedule, None, 1)  # raises the helpful error
    from deeper.accel.amp import amp_policy
    from deeper.accel.distributed import init_distributed, per_rank_batch, wrap_ddp

    world = init_distributed(cfg.run.device)  # None unless launched by torchrun with several processes
    device = world.device if world is not None else resolve_device(cfg.run.device)
    set_deterministic(cfg.run.deterministic)
    seed_everything(cfg.seed)
    spec = get_dataset_spec(cfg.data)
    train, val, test = split_data(cfg)
    if cfg.sampling.bootstrap:  # bagging: a resample with replacement, drawn with the run's seed
        train = bootstrap_resample(train, seed=cfg.seed)
    elif cfg.sampling.sample_weights is not None:  # boosting: a resample that favours earlier members' errors
        from deeper.train.boost import load_sample_weights, weighted_resample

        train = weighted_resample(train, load_sample_weights(cfg.sampling.sample_weights), seed=cfg.seed)
    c, h, w = spec.image_shape
    kwargs = dict(cfg.model_kwargs)
    kwargs.update({k: v for k in ("dropout", "norm") if (v := getattr(cfg.regularize, k)) is not None})
    if h == w:
        kwargs.setdefault("img_size", h)
    model = create_model(cfg.model, num_classes=spec.num_classes, in_chans=c, **kwargs).to(device)
    transfer = {}
    if cfg.transfer.init_from is not None or cfg.transfer.freeze != "none":  # transfer learning (deeper finetune)
        from deeper.train.transfer import prepare_transfer

        transfer = prepare_transfer(model, cfg.transfer.init_from, cfg.transfer.freeze, model_name=cfg.model)
    channels_last = (
        cfg.speed.channels_last if cfg.speed.channels_last is not None else (device.type == "cpu" and has_conv(model))
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.speed.compile:
        from deeper.accel.compile import compile_model

        compile_model(model, device)  # in place: state_dict keys unchanged
    train, test = train.to(device), test.to(device)
    val = val.to(device) if val is not None else None
    rank, world_size = (world.rank, world.world_size) if world is not None else (0, 1)
    train_loader = BatchLoader(
        train, per_rank_batch(cfg.optim.batch_size, world_size), shuffle=True, seed=cfg.seed,
        channels_last=channels_last, rank=rank, world_size=world_size,
        transform=build_train_transform(cfg, spec.num_classes, device),
    )  # fmt: skip
    val_loader = (
        BatchLoader(val, cfg.sampling.eval_batch_size, channels_last=channels_last) if val is not None else None
    )
    test_loader = BatchLoader(test, cfg.sampling.eval_batch_size, channels_last=channels_last)
    optimizer = create_optimizer(
        cfg.optim.optimizer, model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, **cfg.optim.optimizer_kwargs
    )
    total_steps = cfg.optim.epochs * len(train_loader)
    scheduler = create_schedule(
        cfg.optim.schedule, optimizer, total_steps, steps_per_epoch=len(train_loader),
        warmup_steps=round((cfg.optim.warmup or 0) * len(train_loader)), **cfg.optim.schedule_kwargs,
    )  # fmt: skip
    task = ClassificationTask(label_smoothing=cfg.regularize.label_smoothing)
    amp = amp_policy(cfg.speed.amp, device)
    updater = None
    if cfg.speed.cuda_graphs:
        from deeper.accel.graphs import make_graphed_updater

        updater = make_graphed_updater(
            optimizer, scheduler, amp=amp, device=device, clip_grad=cfg.optim.clip_grad,
            weight_noise=cfg.regularize.weight_noise, world_size=world_size,
        )  # fmt: skip
    metadata = {
        "model": cfg.model,
        "num_classes": spec.num_classes,
        "in_chans": c,
        "dataset": cfg.data,
        "classes": list(spec.classes),
        **({"img_size": kwargs["img_size"]} if "img_size" in kwargs else {}),
        # options that shape the model (e.g. norm), so eval/ensemble rebuild the same network
        **(
            {"model_kwargs": extra} if (extra := {k: v for k, v in kwargs.items() if k != "img_size"}) else {}
        ),
        **transfer,  # init_from / freeze of a fine-tuned model
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
        updater=updater,
        amp=amp,
        ddp_model=wrap_ddp(model, world) if world is not None else None,
        rank=rank,
        world_size=world_size,
    )
