"""The one training loop: ``train_one_epoch`` and ``evaluate``.

Both work on any model, task and loader and are importable on their own;
:func:`deeper.train.fit.fit` drives them for a whole run.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from deeper.data import BatchLoader
from deeper.errors import DivergedError
from deeper.train.tasks import MetricSums, StepOutput, Task


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

    def to_dict(self) -> dict:
        return dict(self.__dict__)


StepHook = Callable[[LoopState], bool | None]  # return True to stop after this step


def _progress_enabled(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


class Updater:
    """One optimisation step: loss, finiteness check, backward, optimizer and schedule step.

    This is the place for everything that changes *how* a step is taken
    (gradient clipping, mixed precision, noise on the weights, ...): the loop
    only calls :meth:`step` once per batch.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, scheduler=None, *, amp=None,
        clip_grad: float | None = None, weight_noise: float = 0.0,
    ):  # fmt: skip
        self.optimizer = optimizer
        self.scheduler = scheduler
        #: max global L2 norm of the gradients (``None``: no clipping)
        self.clip_grad = clip_grad
        #: std of Gaussian noise added to the weights for the forward/backward pass of each step
        #: (the update is applied to the clean weights: "noise robustness", Graves 2011)
        self.weight_noise = weight_noise
        #: mixed precision (a :class:`deeper.accel.amp.AmpPolicy`; ``None``: float32)
        self.amp = amp
        self.scaler = amp.make_scaler() if amp is not None else None  # fp16 only
        #: free the gradients between steps (off where they must stay put, as in a CUDA graph's pool)
        self.grads_to_none = True

    def state_dict(self) -> dict:
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def step(self, model: nn.Module, task: Task, batch, state: LoopState) -> StepOutput:
        clean = _add_weight_noise(model, self.weight_noise) if self.weight_noise else None
        with self.amp.autocast() if self.amp is not None else contextlib.nullcontext():
            out = task.training_step(model, batch)
        if not torch.isfinite(out.loss.detach()).item():
            raise DivergedError(
                f"the loss became {out.loss.item()} at step {state.global_step + 1} "
                f"(epoch {state.epoch + 1}, batch {state.step_in_epoch + 1}); "
                "try a lower learning rate or gradient clipping"
            )
        self.optimizer.zero_grad(set_to_none=self.grads_to_none)
        if self.scaler is None:
            out.loss.backward()
        else:  # fp16: scale the loss, then unscale so .grad holds the true gradients
            self.scaler.scale(out.loss).backward()
            self.scaler.unscale_(self.optimizer)
        if clean is not None:  # the gradients were taken at the noisy weights; step from the clean ones
            _restore_weights(model, clean)
        if self.clip_grad is not None:  # the gradients are unscaled at this point
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip_grad)
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)  # skipped when a gradient overflowed
            self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        return out

    def end_epoch(self, state: LoopState) -> None:
        """Called after the last step of each epoch (a place for deferred checks; nothing here)."""


@torch.no_grad()
def _add_weight_noise(model: nn.Module, std: float) -> list[torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    clean = [p.detach().clone() for p in params]
    for p in params:
        p.add_(torch.randn_like(p), alpha=std)
    return clean


@torch.no_grad()
def _restore_weights(model: nn.Module, clean: list[torch.Tensor]) -> None:
    for p, c in zip([p for p in model.parameters() if p.requires_grad], clean):
        p.copy_(c)


def train_one_epoch(
    model: nn.Module,
    task: Task,
    loader: BatchLoader,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    scheduler=None,
    updater: Updater | None = None,
    state: LoopState | None = None,
    on_step: StepHook | None = None,
    progress: bool | None = False,
    desc: str = "train",
) -> dict[str, float]:
    """Train over ``loader`` (from ``state.step_in_epoch`` on); return the task's summary of the epoch.

    Steps are taken by ``updater`` (default: a plain :class:`Updater` over
    ``optimizer`` and ``scheduler``).  Stops early when ``on_step`` returns True.
    A non-finite loss raises :class:`DivergedError` naming the step, before the
    update is applied.
    """
    if updater is None:
        if optimizer is None:
            raise TypeError("train_one_epoch needs an optimizer or an updater")
        updater = Updater(optimizer, scheduler)
    state = state if state is not None else LoopState()
    model.train()
    meter = MetricSums()
    meter.sums = {k: torch.tensor(v, dtype=torch.float64) for k, v in state.epoch_sums.items()}
    meter.count = state.epoch_count
    bar = tqdm(
        total=len(loader), initial=state.step_in_epoch, desc=desc, unit="batch",
        disable=not _progress_enabled(progress), leave=False, dynamic_ncols=True, file=sys.stderr,
    )  # fmt: skip
    start = time.perf_counter()
    try:
        for batch in loader:
            out = updater.step(model, task, batch, state)
            meter.add(out)
            state.global_step += 1
            state.step_in_epoch += 1
            state.train_samples += out.count
            bar.update(1)
            if state.step_in_epoch % 25 == 0:
                bar.set_postfix(task.summarize(meter.totals(), meter.count), refresh=False)
            if on_step is not None and on_step(state):
                break
        updater.end_epoch(state)
    finally:
        state.train_seconds += time.perf_counter() - start
        state.epoch_sums, state.epoch_count = meter.totals(), meter.count
        bar.close()
    return task.summarize(state.epoch_sums, state.epoch_count)


@torch.inference_mode()
def evaluate(
    model: nn.Module, task: Task, loader: BatchLoader, *, progress: bool | None = False
) -> dict[str, float]:
    """The task's summary over ``loader`` in eval mode (dropout off, batch-norm frozen)."""
    was_training = model.training
    model.eval()
    meter = MetricSums()
    for batch in tqdm(
        loader,
        desc="eval",
        unit="batch",
        disable=not _progress_enabled(progress),
        leave=False,
        file=sys.stderr,
    ):
        meter.add(task.evaluation_step(model, batch))
    model.train(was_training)
    return task.summarize(meter.totals(), meter.count)
