"""The one training loop: ``train_one_epoch`` and ``evaluate``, for every task.

Both take the modules (one ``nn.Module``, or the named modules of a run), a
task and a *source* of batches, and are importable on their own;
:func:`deeper.train.engine.run_engine` drives them for a whole run.

A source is anything that iterates batches and says how many steps an epoch
has (``steps_per_epoch``): the in-memory :class:`~deeper.data.BatchLoader`, a
detection loader with variable-size targets, or an environment stepping for
DQN.  The loop never calls ``len`` on it and never looks inside a batch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from deeper.tasks.base import StepOutput, Task
from deeper.train.metrics import Meter
from deeper.train.parts import Parts
from deeper.train.stepper import Stepper


@dataclass
class LoopState:
    """Where a run is: updated by the loop, saved in every checkpoint."""

    epoch: int = 0  # the epoch being trained (0-based)
    step_in_epoch: int = 0  # batches of it already done
    global_step: int = 0
    train_seconds: float = 0.0
    train_samples: int = 0
    epoch_sums: dict[str, float] = field(default_factory=dict)  # metric sums of the current epoch so far
    epoch_count: int = 0
    history: list[dict] = field(default_factory=list)
    #: the meter of the epoch being trained (not saved: :meth:`snapshot_sums` copies its sums above)
    live: Meter | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "live"}

    @classmethod
    def from_dict(cls, saved) -> LoopState:
        """The state :meth:`to_dict` saved, every field checked (a ValueError names a bad one)."""
        kinds = {"epoch": int, "step_in_epoch": int, "global_step": int, "train_seconds": (int, float),
                 "train_samples": int, "epoch_sums": dict, "epoch_count": int, "history": list}  # fmt: skip
        if not isinstance(saved, dict) or set(saved) != set(kinds):
            raise ValueError(f"the loop state must hold exactly {sorted(kinds)}")
        for key, kind in kinds.items():
            value = saved[key]
            if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
                raise ValueError(f"loop state {key}={value!r} is not a valid value")
        return cls(**saved)

    def snapshot_sums(self) -> None:
        """Copy the running epoch's sums into ``epoch_sums``/``epoch_count`` (before a mid-epoch checkpoint)."""
        if self.live is not None:
            self.epoch_sums, self.epoch_count = self.live.totals(), self.live.count

    def live_metric(self, name: str) -> float | None:
        """The task's ``name`` figure of the epoch so far (one host sync)."""
        if self.live is None or not self.live.count:
            return None
        return self.live.task.summarize(self.live.totals(), self.live.count).get(name)


StepHook = Callable[[LoopState], bool | None]  # return True to stop after this step


def progress_enabled(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def steps_per_epoch(source) -> int:
    """How many batches an epoch of ``source`` has (its ``steps_per_epoch``, else its length)."""
    n = getattr(source, "steps_per_epoch", None)
    return int(n) if n is not None else len(source)


def as_nets(model_or_nets) -> dict[str, nn.Module]:
    """Named modules from one module (``{"net": model}``), a mapping or :class:`Parts`."""
    if isinstance(model_or_nets, Parts):
        return model_or_nets.for_training()
    if isinstance(model_or_nets, Mapping):
        return dict(model_or_nets)
    return {"net": model_or_nets}


def train_one_epoch(
    model: nn.Module | Mapping[str, nn.Module],
    task: Task,
    loader,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    scheduler=None,
    stepper: Stepper | None = None,
    state: LoopState | None = None,
    on_step: StepHook | None = None,
    progress: bool | None = False,
    desc: str = "train",
) -> dict[str, float]:
    """Train over ``loader`` (from ``state.step_in_epoch`` on); return the task's summary of the epoch.

    Steps are taken by ``stepper`` (default: a plain :class:`Stepper` over
    ``optimizer`` and ``scheduler``) through ``task.training_step``.  Stops early
    when ``on_step`` returns True.  A non-finite loss raises
    :class:`~deeper.errors.DivergedError` naming the step, before the update is applied.
    """
    if stepper is None:
        if optimizer is None:
            raise TypeError("train_one_epoch needs an optimizer or a stepper")
        stepper = Stepper.single(optimizer, scheduler)
    state = state if state is not None else LoopState()
    nets = as_nets(model)
    for m in nets.values():
        m.train()
    meter = Meter(task)
    meter.load_totals(state.epoch_sums, state.epoch_count)
    state.live = meter
    total = steps_per_epoch(loader)
    bar = tqdm(
        total=total, initial=state.step_in_epoch, desc=desc, unit="batch",
        disable=not progress_enabled(progress), leave=False, dynamic_ncols=True, file=sys.stderr,
    )  # fmt: skip
    start = time.perf_counter()
    try:
        for batch in loader:
            out = task.training_step(nets, batch, stepper, state)
            meter.add(out)
            state.global_step += 1
            state.step_in_epoch += 1
            state.train_samples += out.count
            bar.update(1)
            if state.step_in_epoch % 25 == 0:
                bar.set_postfix(task.summarize(meter.totals(), meter.count), refresh=False)
            if on_step is not None and on_step(state):
                break
            if state.step_in_epoch >= total:  # a source that does not end by itself (an environment)
                break
        stepper.end_epoch(state)
    finally:
        state.train_seconds += time.perf_counter() - start
        state.epoch_sums, state.epoch_count = meter.totals(), meter.count
        state.live = None
        bar.close()
    return task.summarize(state.epoch_sums, state.epoch_count)


@torch.inference_mode()
def evaluate(
    model: nn.Module | Mapping[str, nn.Module],
    task: Task,
    loader,
    *,
    split: str = "val",
    progress: bool | None = False,
    desc: str | None = None,
) -> dict:
    """The task's figures over ``loader`` in eval mode (dropout off, batch-norm frozen); a progress
    bar named ``desc`` (default: the split) when ``progress`` (``None``: when stderr is a terminal).

    Sums (loss, accuracy) and the task's torchmetrics metrics for ``split``; scalars
    as floats, larger results (a confusion matrix) as nested lists.
    """
    nets = model.for_eval() if isinstance(model, Parts) else as_nets(model)
    was_training = {k: m.training for k, m in nets.items()}
    for m in nets.values():
        m.eval()
    meter = Meter(task, task.eval_metrics(split))
    bar = tqdm(
        loader, total=steps_per_epoch(loader), desc=desc or split, unit="batch",
        disable=not progress_enabled(progress), leave=False, file=sys.stderr,
    )  # fmt: skip
    for batch in bar:
        meter.add(task.evaluation_step(nets, batch))
    for k, m in nets.items():
        m.train(was_training[k])
    return meter.compute()


__all__ = ["LoopState", "StepOutput", "evaluate", "steps_per_epoch", "train_one_epoch"]
