"""Learning-rate schedules (``--schedule NAME``), stepped once per training step.

Every schedule is built from the total number of steps of the run, so a shorter
run gets the whole schedule compressed into it (``--epochs 1`` still anneals).
Built on ``torch.optim.lr_scheduler``; their state dicts hold only numbers and
strings, so they resume from a ``weights_only`` checkpoint.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from deeper.errors import ConfigError


@dataclass(frozen=True)
class ScheduleEntry:
    name: str
    build: Callable[..., LRScheduler | None]
    description: str


_SCHEDULES: dict[str, ScheduleEntry] = {}


def register_schedule(name: str, description: str):
    def deco(build):
        if name in _SCHEDULES:
            raise ValueError(f"schedule {name!r} is already registered")
        _SCHEDULES[name] = ScheduleEntry(name, build, description)
        return build

    return deco


def list_schedules() -> list[str]:
    return sorted(_SCHEDULES)


def create_schedule(name: str, optimizer: torch.optim.Optimizer, total_steps: int) -> LRScheduler | None:
    if name not in _SCHEDULES:
        close = difflib.get_close_matches(name, _SCHEDULES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown schedule {name!r}{hint} (known: {', '.join(sorted(_SCHEDULES))})")
    if total_steps < 1:
        raise ConfigError("a schedule needs at least one training step")
    return _SCHEDULES[name].build(optimizer, total_steps)


@register_schedule("constant", "the learning rate never changes (the book's recipe)")
def _constant(optimizer, total_steps):
    return None


def _cosine_factor(step: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


@register_schedule("cosine", "cosine decay from lr to 0 over the run")
def _cosine(optimizer, total_steps):
    return LambdaLR(optimizer, lambda step: _cosine_factor(step, total_steps))


@register_schedule("onecycle", "one-cycle: warm up to lr over 25% of the run, then cosine down to lr/10^4")
def _onecycle(optimizer, total_steps):
    max_lrs = [g["lr"] for g in optimizer.param_groups]
    cycle_momentum = "momentum" in optimizer.defaults and optimizer.defaults.get("momentum", 0) > 0
    cycle_momentum = cycle_momentum or "betas" in optimizer.defaults
    return OneCycleLR(
        optimizer, max_lr=max_lrs, total_steps=total_steps, pct_start=0.25, cycle_momentum=cycle_momentum
    )
