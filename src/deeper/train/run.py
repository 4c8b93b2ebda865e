"""Assembling a training run from a configuration: the task builds its parts and sources; the engine
adds what every task shares (process group, device, seed, DDP wrappers, the stepper)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.runtime import resolve_device, seed_everything, set_deterministic
from deeper.tasks.base import Task, create_task
from deeper.train.build import BuildContext, Built
from deeper.train.config import TrainConfig
from deeper.train.parts import Parts
from deeper.train.stepper import Stepper


def default_run_dir(cfg: TrainConfig) -> Path:
    """``runs/MODEL-DATA-TIME`` (classification), ``runs/TASK-MODEL-DATA-TIME``, or ``runs/TASK-TIME`` for a
    task that builds its own networks and data."""
    from deeper.tasks.base import get_task_class

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    task = get_task_class(cfg.task)
    words = [] if cfg.task == "classify" else [cfg.task]
    words += [cfg.model] if task.model_family is not None else []
    words += [cfg.data] if task.data_kind is not None else []
    return Path("runs") / "-".join([*words, stamp])


@dataclass
class Run:
    """Everything the engine assembles; exposed so tests, benchmarks and callbacks can use the pieces.

    ``model``, ``optimizer`` and ``scheduler`` are shorthands for runs of one
    trained part (classification); ``parts`` holds them all.
    """

    cfg: TrainConfig
    device: torch.device
    task: Task
    parts: Parts
    train_loader: object  # the source of training batches
    val_loader: object | None
    test_loader: object | None
    stepper: Stepper
    metadata: dict
    #: mixed precision of the training steps (a :class:`deeper.train.amp.AmpPolicy`)
    amp: object = None
    rank: int = 0
    world_size: int = 1
    #: more entries for ``result.json`` (set by callbacks, e.g. the raw weights' test accuracy under --ema)
    extras: dict = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        """What was trained, as the weights record it (the task's own network when it builds one)."""
        return self.metadata.get("model", self.cfg.model)

    @property
    def data_name(self) -> str:
        return self.metadata.get("dataset", self.cfg.data)

    @property
    def is_main(self) -> bool:
        """Rank 0 (or the only process): the one that logs and writes."""
        return self.rank == 0

    @property
    def model(self) -> nn.Module:
        """The exported module as trained (bare, never the DDP wrapper)."""
        return self.parts.modules[self.parts.export]

    @property
    def final_model(self) -> nn.Module:
        """The exported module as evaluated and saved (an average of its weights under --ema)."""
        return self.parts.exported

    @property
    def eval_model(self) -> nn.Module | None:
        return self.parts.averaged.get(self.parts.export)

    @eval_model.setter
    def eval_model(self, module: nn.Module) -> None:
        self.parts.averaged[self.parts.export] = module

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.parts.optimizers[self.parts.only_optimizer()]

    @property
    def scheduler(self):
        return self.parts.schedulers.get(self.parts.only_optimizer())

    @property
    def schedulers(self) -> dict:
        """Every optimizer's schedule, by optimizer name."""
        return self.parts.schedulers

    @property
    def total_steps(self) -> int:
        from deeper.train.loop import steps_per_epoch

        return self.cfg.optim.epochs * steps_per_epoch(self.train_loader)


def trained_modules(parts: Parts) -> list[str]:
    """The modules some optimizer updates (DDP wraps these; frozen parts stay bare)."""
    optimized = {id(p) for o in parts.optimizers.values() for g in o.param_groups for p in g["params"]}
    return [n for n, m in parts.modules.items() if any(id(p) in optimized for p in m.parameters())]


def check_fits(task: Task, cfg: TrainConfig) -> None:
    """The model, dataset, optimizer and schedule names exist and fit the task (before any data is loaded)."""
    from deeper.data import get_dataset_spec
    from deeper.models import get_model_entry
    from deeper.tasks.base import classification_options_used
    from deeper.train.optim import get_optimizer_entry
    from deeper.train.schedule import create_schedule, list_schedules

    if task.model_family is not None:
        entry = get_model_entry(cfg.model)
        if entry.family != task.model_family:
            raise ConfigError(
                f"model {cfg.model!r} is a {entry.family} model; task {task.name!r} takes "
                f"{task.model_family} models (`deeper models --task {task.name}`)"
            )
    if task.data_kind is not None:
        spec = get_dataset_spec(cfg.data)
        if not task.takes_data(spec.kind):
            kinds = task.data_kind if isinstance(task.data_kind, str) else " or ".join(task.data_kind)
            raise ConfigError(
                f"dataset {cfg.data!r} holds {spec.kind}; task {task.name!r} trains on {kinds} "
                "(`deeper tasks`)"
            )
    if bad := [k for k in classification_options_used(cfg) if k not in task.takes]:
        raise ConfigError(f"task {task.name!r} does not take {', '.join(bad)} (classification options)")
    if cfg.regularize.weight_noise and not task.automatic:
        raise ConfigError(
            f"--weight-noise perturbs the one forward pass of a step; task {task.name!r} takes several"
        )
    get_optimizer_entry(cfg.optim.optimizer)
    if cfg.optim.schedule not in list_schedules():
        create_schedule(cfg.optim.schedule, None, 1)  # raises the helpful error


def build_run(cfg: TrainConfig) -> Run:
    """The task's parts and sources for a resolved config, with the engine's stepper and wrappers."""
    from deeper.train.amp import amp_policy, resolve_auto
    from deeper.train.distributed import init_distributed, wrap_ddp

    task = create_task(cfg.task, cfg.task_args)
    check_fits(task, cfg)
    world = init_distributed(cfg.run.device)  # None unless launched by torchrun with several processes
    device = world.device if world is not None else resolve_device(cfg.run.device)
    set_deterministic(cfg.run.deterministic)
    seed_everything(cfg.seed)
    rank, world_size = (world.rank, world.world_size) if world is not None else (0, 1)
    built: Built = task.build(BuildContext(cfg, device, rank, world_size))
    parts = built.parts
    amp = amp_policy(resolve_auto(cfg.speed.amp, device, task_allows=task.auto_amp), device)
    stepper = None
    if cfg.speed.cuda_graphs:
        if not task.automatic or len(parts.optimizers) != 1:
            raise ConfigError(
                f"--cuda-graphs replays one forward and backward per step; task {cfg.task!r} takes several"
            )
        from deeper.train.graphs import make_graphed_stepper

        stepper = make_graphed_stepper(
            parts.optimizers, parts.schedulers, amp=amp, device=device, clip_grad=cfg.optim.clip_grad,
            weight_noise=cfg.regularize.weight_noise, world_size=world_size,
        )  # fmt: skip
    if stepper is None:
        stepper = Stepper(
            parts.optimizers, parts.schedulers, amp=amp,
            clip_grad=cfg.optim.clip_grad, weight_noise=cfg.regularize.weight_noise or 0.0,
        )  # fmt: skip
    if world is not None:
        static = len(parts.optimizers) == 1 and task.automatic  # one forward and backward per step
        parts.wrapped = {
            n: wrap_ddp(parts.modules[n], world, static_graph=static) for n in trained_modules(parts)
        }
    return Run(
        cfg, device, task, parts, built.train, built.val, built.test, stepper, built.metadata,
        amp=amp, rank=rank, world_size=world_size,
    )  # fmt: skip
