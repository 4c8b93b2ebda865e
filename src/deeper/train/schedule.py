"""Learning-rate schedules (``--schedule NAME``, ``--schedule-arg KEY=VALUE``, ``--warmup EPOCHS``).

Schedules are stepped once per training step.  Every schedule is built from
the total number of steps of the run, so a shorter run gets the whole schedule
compressed into it (``--epochs 1`` still anneals); options that count time
(``every`` of ``step``, ``gamma`` of ``exponential``) are in epochs.

``--warmup W`` puts a linear warm-up of ``W`` epochs (a fraction is fine) in
front of any schedule: the learning rate climbs from ``lr / (steps + 1)`` to the
schedule's first value, and the schedule then runs over the remaining steps.

``plateau`` is the one schedule driven by the validation split: at the end of
each epoch a callback feeds it the validation loss, and it divides the learning
rate by ``1 / factor`` after ``patience`` epochs without improvement.

Built on ``torch.optim.lr_scheduler``; the state dicts hold only numbers and
strings, so they resume from a ``weights_only`` checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR, ReduceLROnPlateau

from deeper.errors import ConfigError, unknown_name
from deeper.train.callbacks import Callback, register_callback


@dataclass(frozen=True)
class ScheduleEntry:
    name: str
    build: Callable[..., object | None]
    description: str
    defaults: dict[str, object] = field(default_factory=dict)


_SCHEDULES: dict[str, ScheduleEntry] = {}


def register_schedule(name: str, description: str, **defaults):
    """Register ``build(optimizer, total_steps, *, steps_per_epoch, **options)`` under ``name``.

    ``defaults`` are the schedule's options (``--schedule-arg KEY=VALUE``); ``None``
    means "derived from the run's length" (see each schedule's description).
    """

    def deco(build):
        if name in _SCHEDULES:
            raise ValueError(f"schedule {name!r} is already registered")
        _SCHEDULES[name] = ScheduleEntry(name, build, description, defaults)
        return build

    return deco


def list_schedules() -> list[str]:
    return sorted(_SCHEDULES)


def get_schedule_entry(name: str) -> ScheduleEntry:
    if name not in _SCHEDULES:
        raise unknown_name("schedule", name, _SCHEDULES)
    return _SCHEDULES[name]


def create_schedule(
    name: str,
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    *,
    steps_per_epoch: int | None = None,
    warmup_steps: int = 0,
    **options,
):
    """The scheduler for ``name`` over ``total_steps`` (``None`` for ``constant`` without warm-up)."""
    entry = get_schedule_entry(name)
    unknown = sorted(set(options) - set(entry.defaults))
    if unknown:
        known = ", ".join(entry.defaults) or "none"
        raise ConfigError(f"schedule {name!r} has no option {', '.join(unknown)} (its options: {known})")
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"schedule {name!r}: option {key} must be a number, got {value!r}")
    if total_steps < 1:
        raise ConfigError("a schedule needs at least one training step")
    if not 0 <= warmup_steps < total_steps:
        raise ConfigError(
            f"the warm-up ({warmup_steps} steps) must be shorter than the run ({total_steps} steps)"
        )
    steps_per_epoch = steps_per_epoch or total_steps
    inner = entry.build(
        optimizer,
        total_steps - warmup_steps,
        steps_per_epoch=steps_per_epoch,
        **{**entry.defaults, **options},
    )
    return Warmup(optimizer, inner, warmup_steps) if warmup_steps else inner


class Warmup:
    """Linear warm-up over ``warmup_steps`` steps, then ``inner`` (any scheduler, or ``None``).

    The learning rate of step ``s < warmup_steps`` is ``target * (s + 1) / (warmup_steps + 1)``,
    where ``target`` is the rate ``inner`` starts from; from then on ``inner`` steps.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, inner, warmup_steps: int):
        self.optimizer, self.inner, self.warmup_steps = optimizer, inner, warmup_steps
        self.target = [g["lr"] for g in optimizer.param_groups]
        self.step_count = 0
        self._set(1 / (warmup_steps + 1))

    def _set(self, factor: float) -> None:
        for g, t in zip(self.optimizer.param_groups, self.target):
            g["lr"] = t * factor

    @property
    def warming_up(self) -> bool:
        return self.step_count < self.warmup_steps

    def step(self) -> None:
        self.step_count += 1
        if self.step_count < self.warmup_steps:
            self._set((self.step_count + 1) / (self.warmup_steps + 1))
        elif self.step_count == self.warmup_steps:
            self._set(1.0)
        elif self.inner is not None:
            self.inner.step()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        inner = self.inner.state_dict() if self.inner is not None else None
        return {"step_count": self.step_count, "target": list(self.target), "inner": inner}

    def load_state_dict(self, state: dict) -> None:
        self.step_count, self.target = state["step_count"], list(state["target"])
        if self.inner is not None and state.get("inner") is not None:
            self.inner.load_state_dict(state["inner"])


def replay(schedule, steps: int) -> None:
    """Step a freshly built ``schedule`` ``steps`` times: the learning rate it sets is then the one of that
    step (no optimizer step in between; a schedule shorter than ``steps`` stops at its end)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "lr_scheduler.step() before optimizer.step()"
        for _ in range(steps):
            try:
                schedule.step()
            except ValueError:  # OneCycleLR past its total steps
                break


class Plateau:
    """``ReduceLROnPlateau`` fed once per epoch (by a callback); a no-op at each training step."""

    def __init__(self, optimizer: torch.optim.Optimizer, **kwargs):
        self.scheduler = ReduceLROnPlateau(optimizer, **kwargs)

    def step(self) -> None:
        pass

    def observe(self, value: float) -> None:
        self.scheduler.step(value)

    def get_last_lr(self) -> list[float]:
        return self.scheduler.get_last_lr()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


@register_schedule("constant", "the learning rate never changes (the book's recipe)")
def _constant(optimizer, total_steps, *, steps_per_epoch):
    return None


@register_schedule(
    "step",
    "step decay: multiply lr by gamma every `every` epochs [every: a third of the run, gamma 0.1]",
    every=None,
    gamma=0.1,
)
def _step(optimizer, total_steps, *, steps_per_epoch, every, gamma):
    period = total_steps / 3 if every is None else every * steps_per_epoch
    if not period > 0 or not 0 < gamma <= 1:
        raise ConfigError(f"schedule 'step': every must be > 0 and gamma in (0, 1], got {every}, {gamma}")
    return LambdaLR(optimizer, lambda step: gamma ** math.floor(step / period))


@register_schedule(
    "exponential",
    "exponential decay: lr * gamma^epoch, smoothly per step [gamma: reaching lr * final at the end; final 0.01]",
    gamma=None,
    final=0.01,
)
def _exponential(optimizer, total_steps, *, steps_per_epoch, gamma, final):
    if gamma is None:
        if not 0 < final <= 1:
            raise ConfigError(f"schedule 'exponential': final must be in (0, 1], got {final}")
        gamma = final ** (steps_per_epoch / total_steps)
    if not 0 < gamma <= 1:
        raise ConfigError(f"schedule 'exponential': gamma must be in (0, 1], got {gamma}")
    return LambdaLR(optimizer, lambda step: gamma ** (step / steps_per_epoch))


def _cosine_factor(step: int, total: int, final: float = 0.0) -> float:
    return final + (1 - final) * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


@register_schedule("cosine", "cosine decay from lr to lr * final over the run [final 0]", final=0.0)
def _cosine(optimizer, total_steps, *, steps_per_epoch, final):
    if not 0 <= final <= 1:
        raise ConfigError(f"schedule 'cosine': final must be in [0, 1], got {final}")
    return LambdaLR(optimizer, lambda step: _cosine_factor(step, total_steps, final))


@register_schedule(
    "onecycle",
    "one-cycle: warm up from lr/div to lr over pct_start of the run, then cosine down to lr/(div*final_div) "
    "(momentum cycles the other way) [pct_start 0.25, div 25, final_div 10^4]",
    pct_start=0.25,
    div=25.0,
    final_div=1e4,
)
def _onecycle(optimizer, total_steps, *, steps_per_epoch, pct_start, div, final_div):
    if not 0 < pct_start < 1 or div <= 0 or final_div <= 0:
        raise ConfigError("schedule 'onecycle': pct_start must be in (0, 1), div and final_div positive")
    if math.isclose(pct_start * total_steps, 1.0):  # torch's warm-up phase would end at step 0 (0/0)
        pct_start = 1.5 / total_steps
    max_lrs = [g["lr"] for g in optimizer.param_groups]
    cycle_momentum = "momentum" in optimizer.defaults and optimizer.defaults.get("momentum", 0) > 0
    cycle_momentum = cycle_momentum or "betas" in optimizer.defaults
    return OneCycleLR(
        optimizer, max_lr=max_lrs, total_steps=total_steps, pct_start=pct_start,
        div_factor=div, final_div_factor=final_div, cycle_momentum=cycle_momentum,
    )  # fmt: skip


@register_schedule(
    "plateau",
    "reduce on plateau: lr *= factor when the validation loss has not improved for `patience` epochs "
    "[factor 0.2, patience 2, min_lr 0]",
    factor=0.2,
    patience=2,
    min_lr=0.0,
)
def _plateau(optimizer, total_steps, *, steps_per_epoch, factor, patience, min_lr):
    if not 0 < factor < 1 or patience < 0 or min_lr < 0:
        raise ConfigError("schedule 'plateau': factor must be in (0, 1), patience and min_lr >= 0")
    return Plateau(optimizer, mode="min", factor=factor, patience=int(patience), min_lr=min_lr)


def find_plateau(scheduler) -> Plateau | None:
    """The :class:`Plateau` inside ``scheduler`` (itself or behind a warm-up), if any."""
    if isinstance(scheduler, Warmup):
        return scheduler.inner if isinstance(scheduler.inner, Plateau) else None
    return scheduler if isinstance(scheduler, Plateau) else None


class PlateauFeed(Callback):
    """Feeds the epoch's validation loss (training loss without a validation split) to ``plateau``."""

    name = "plateau"

    def on_epoch_end(self, run, state, row: dict) -> None:
        value = row.get("val_loss", row.get("train_loss"))
        for scheduler in run.schedulers.values():
            plateau = find_plateau(scheduler)
            if plateau is None or (isinstance(scheduler, Warmup) and scheduler.warming_up):
                continue
            if value is not None:
                plateau.observe(value)
        return None


@register_callback
def _plateau_callback(cfg) -> Callback | None:
    return PlateauFeed() if cfg.optim.schedule == "plateau" else None


__all__ = [
    "LRScheduler",
    "Plateau",
    "Warmup",
    "create_schedule",
    "get_schedule_entry",
    "list_schedules",
    "register_schedule",
]
