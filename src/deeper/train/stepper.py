"""Optimisation steps, the engine's for every task and every optimizer.

:meth:`Stepper.update` takes one step of one named optimizer from a loss: a
finiteness check (a NaN or infinite loss stops the run naming the step, before
any update), ``zero_grad``, the backward pass (scaled under ``--amp fp16``, one
grad scaler per optimizer), gradient clipping, the optimizer step and the
schedule step.  A task with several optimizers calls it once per optimizer and
per turn (a GAN: the discriminator, then the generator).

:meth:`Stepper.step` is the whole step of a task with one optimizer: noise on
the weights if asked (``--weight-noise``), the forward pass and loss under
autocast, then :meth:`update`.  The CUDA-graph stepper
(:mod:`deeper.train.graphs`) replaces this method.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch

from deeper.errors import ConfigError, DivergedError

if TYPE_CHECKING:
    from deeper.tasks.base import Nets, StepOutput, Task
    from deeper.train.loop import LoopState


def _params(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]


class Stepper:
    """Steps the named optimizers (and their schedules) of a run."""

    def __init__(
        self, optimizers: dict[str, torch.optim.Optimizer], schedulers: dict[str, object] | None = None, *,
        amp=None, clip_grad: float | None = None, weight_noise: float = 0.0,
    ):  # fmt: skip
        self.optimizers = dict(optimizers)
        self.schedulers = dict(schedulers or {})
        #: max global L2 norm of each optimizer's gradients (``None``: no clipping)
        self.clip_grad = clip_grad
        #: std of Gaussian noise added to the weights for the forward/backward pass of each step
        #: (the update is applied to the clean weights: "noise robustness", Graves 2011)
        self.weight_noise = weight_noise
        #: mixed precision (a :class:`deeper.train.amp.AmpPolicy`; ``None``: float32)
        self.amp = amp
        self.scalers = {n: amp.make_scaler() for n in self.optimizers} if amp is not None else {}
        self.scalers = {n: s for n, s in self.scalers.items() if s is not None}  # fp16 only
        #: free the gradients between steps (off where they must stay put, as in a CUDA graph's pool)
        self.grads_to_none = True

    @classmethod
    def single(
        cls, optimizer: torch.optim.Optimizer, scheduler=None, *, name: str = "net", **kwargs
    ) -> Stepper:
        return cls({name: optimizer}, {name: scheduler} if scheduler is not None else {}, **kwargs)

    def autocast(self):
        """The context forward passes and losses run in (mixed precision, when on)."""
        return self.amp.autocast() if self.amp is not None else contextlib.nullcontext()

    def only(self) -> str:
        if len(self.optimizers) != 1:
            raise ConfigError(
                f"a task with optimizers {sorted(self.optimizers)} takes its steps with update(name, loss)"
            )
        return next(iter(self.optimizers))

    # ---- the two entry points
    def step(self, task: Task, nets: Nets, batch, state: LoopState) -> StepOutput:
        """Forward, loss and update of a task with one optimizer."""
        name = self.only()
        clean = _add_weight_noise(self.optimizers[name], self.weight_noise) if self.weight_noise else None
        with self.autocast():
            out = task.loss(nets, batch)
        self.update(name, out.loss, state, _clean=clean)
        return out

    def update(self, name: str, loss: torch.Tensor, state: LoopState, *, _clean=None) -> None:
        """Back-propagate ``loss`` and step optimizer ``name`` and its schedule."""
        optimizer = self.optimizers[name]
        if not torch.isfinite(loss.detach()).item():
            which = f" ({name})" if len(self.optimizers) > 1 else ""
            raise DivergedError(
                f"the loss{which} became {loss.item()} at step {state.global_step + 1} "
                f"(epoch {state.epoch + 1}, batch {state.step_in_epoch + 1}); "
                "try a lower learning rate or gradient clipping"
            )
        optimizer.zero_grad(set_to_none=self.grads_to_none)
        scaler = self.scalers.get(name)
        if scaler is None:
            loss.backward()
        else:  # fp16: scale the loss, then unscale so .grad holds the true gradients
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        if _clean is not None:  # the gradients were taken at the noisy weights; step from the clean ones
            _restore_weights(optimizer, _clean)
        if self.clip_grad is not None:  # the gradients are unscaled at this point
            torch.nn.utils.clip_grad_norm_(_params(optimizer), self.clip_grad)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)  # skipped when a gradient overflowed
            scaler.update()
        if (scheduler := self.schedulers.get(name)) is not None:
            scheduler.step()

    def end_epoch(self, state: LoopState) -> None:
        """Called after the last step of each epoch (a place for deferred checks; nothing here)."""

    # ---- checkpoints
    def state_dict(self) -> dict:
        return {"scalers": {n: s.state_dict() for n, s in self.scalers.items()}}

    def load_state_dict(self, state: dict) -> None:
        for n, s in state.get("scalers", {}).items():
            if n in self.scalers and s:
                self.scalers[n].load_state_dict(s)


@torch.no_grad()
def _add_weight_noise(optimizer: torch.optim.Optimizer, std: float) -> list[torch.Tensor]:
    params = _params(optimizer)
    clean = [p.detach().clone() for p in params]
    for p in params:
        p.add_(torch.randn_like(p), alpha=std)
    return clean


@torch.no_grad()
def _restore_weights(optimizer: torch.optim.Optimizer, clean: list[torch.Tensor]) -> None:
    for p, c in zip(_params(optimizer), clean):
        p.copy_(c)
