"""What a task builds a run from (:class:`BuildContext`) and what it hands back (:class:`Built`).

The context carries the resolved configuration, the device and the process's
place in a data-parallel group, and the helpers every task needs: optimizers
and schedules made the way ``--optimizer``/``--lr``/``--schedule`` say, and
modules placed on the device (memory layout, ``--compile``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from deeper.train.config import TrainConfig
from deeper.train.optim import create_optimizer
from deeper.train.parts import Parts
from deeper.train.schedule import create_schedule


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


@dataclass
class BuildContext:
    cfg: TrainConfig
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def batch_size(self) -> int:
        """This process's share of the global ``--batch-size``."""
        from deeper.train.distributed import per_rank_batch

        return per_rank_batch(self.cfg.optim.batch_size, self.world_size)

    def channels_last(self, model: nn.Module) -> bool:
        """``--channels-last`` as given, else on for convolutional models on the CPU (oneDNN's fast path)."""
        flag = self.cfg.speed.channels_last
        return flag if flag is not None else (self.device.type == "cpu" and has_conv(model))

    def place(self, model: nn.Module, *, channels_last: bool = False, compile: bool = True) -> nn.Module:
        """``model`` on the run's device, in the memory layout asked for, compiled with ``--compile``."""
        model = model.to(self.device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if compile and self.cfg.speed.compile:
            from deeper.train.compile import compile_model

            compile_model(model, self.device)  # in place: state_dict keys unchanged
        return model

    def optimizer(
        self, params, steps_per_epoch: int, *, name: str | None = None, lr: float | None = None,
        weight_decay: float | None = None, schedule: str | None = None, **kwargs,
    ) -> tuple[torch.optim.Optimizer, object]:  # fmt: skip
        """An optimizer and its schedule as the configuration says (each argument overrides it)."""
        o = self.cfg.optim
        opt = create_optimizer(
            name or o.optimizer, params, lr=o.lr if lr is None else lr,
            weight_decay=o.weight_decay if weight_decay is None else weight_decay,
            **{**o.optimizer_kwargs, **kwargs},
        )  # fmt: skip
        sched = create_schedule(
            schedule or o.schedule, opt, o.epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch,
            warmup_steps=round((o.warmup or 0) * steps_per_epoch), **o.schedule_kwargs,
        )  # fmt: skip
        return opt, sched


@dataclass
class Built:
    """A task's run: its parts, the sources of its batches, and what its weights record."""

    parts: Parts
    train: object  # a source: iterates batches, has steps_per_epoch and set_epoch(epoch, skip_batches)
    val: object | None = None
    test: object | None = None
    #: recorded in the exported weights' metadata (the engine adds the task and its test figures)
    metadata: dict = field(default_factory=dict)
