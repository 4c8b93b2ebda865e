"""Weight averaging: an exponential moving average (EMA) of the weights, evaluated and saved.

With ``--ema DECAY`` every optimisation step also updates a shadow copy of the network::

    d_t = min(DECAY, (1 + t) / (10 + t))          # t: steps averaged so far
    W_ema <- d_t * W_ema + (1 - d_t) * W

(Polyak & Juditsky 1992; the warm-up ``d_t`` is TensorFlow's ``num_updates`` rule,
so the first steps are not dominated by the initial weights.)  Batch-norm running
statistics are averaged the same way; integer buffers (batch counters) are copied.
The shadow is what the run validates each epoch, tests and saves: the training
steps keep using the raw weights.  Averaging over the last ~1/(1 - DECAY) steps
smooths the noise of SGD's last iterates, which is what a long decaying learning
rate also does; with a schedule that already ends near zero the two overlap.

The averaging is torch's :class:`torch.optim.swa_utils.AveragedModel`; this module
only adds the warm-up, the integer buffers and the checkpointing.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from deeper.errors import ConfigError
from deeper.runtime import notice
from deeper.train.callbacks import Callback, register_callback
from deeper.train.loop import evaluate


def ema_decay(decay: float, steps_averaged: int) -> float:
    """The decay used for the update after ``steps_averaged`` earlier ones (warm-up included)."""
    return min(decay, (1 + steps_averaged) / (10 + steps_averaged))


class _EmaUpdate:
    """``AveragedModel``'s ``multi_avg_fn``: the warm-up EMA on float tensors, a copy of integer ones.

    ``steps`` (updates averaged so far) is kept here as a Python int, so that a step costs
    no device-to-host read of ``AveragedModel.n_averaged``.
    """

    def __init__(self, decay: float):
        self.decay, self.steps = decay, 0

    @torch.no_grad()
    def __call__(self, averaged: list[torch.Tensor], current: list[torch.Tensor], _n_averaged) -> None:
        if not averaged[0].is_floating_point():  # a group of integer buffers (num_batches_tracked)
            torch._foreach_copy_(averaged, current)
            return
        torch._foreach_lerp_(averaged, current, 1.0 - ema_decay(self.decay, self.steps))


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An :class:`AveragedModel` of ``model`` (parameters and buffers) with the warm-up EMA above.

    Call :func:`update_ema` to average in the model's current weights.
    """
    if not 0.0 < decay < 1.0:
        raise ConfigError(f"--ema takes a decay in (0, 1), e.g. 0.999; got {decay}")
    ema = AveragedModel(model, multi_avg_fn=_EmaUpdate(decay), use_buffers=True)
    if getattr(ema.module, "_compiled_call_impl", None) is not None:  # nn.Module.compile(): evaluate eagerly
        ema.module._compiled_call_impl = None
    return ema


def update_ema(ema: AveragedModel, model: nn.Module) -> None:
    """Average ``model``'s current parameters and buffers into ``ema`` (the first call copies them)."""
    ema.update_parameters(model)
    ema.multi_avg_fn.steps += 1


def load_ema(ema: AveragedModel, state: dict) -> None:
    """Restore ``ema`` from its ``state_dict``, step count included."""
    ema.load_state_dict(state)
    ema.multi_avg_fn.steps = int(ema.n_averaged.item())


class WeightAverage(Callback):
    """Keeps the EMA of ``run.model`` after every step and makes it the run's evaluated/saved model."""

    name = "ema"

    def __init__(self, decay: float):
        self.decay = decay  # checked in TrainConfig (make_ema checks it again)
        self.ema: AveragedModel | None = None

    def on_fit_start(self, run, state) -> None:
        self.ema = make_ema(run.model, self.decay)
        run.eval_model = self.ema.module
        notice(f"validating, testing and saving an EMA of the weights (decay {self.decay:g})")

    def on_step_end(self, run, state) -> str | None:
        update_ema(self.ema, run.model)
        return None

    def on_epoch_end(self, run, state, row: dict) -> str | None:
        if run.val_loader is not None:  # the raw weights too, to see what the average buys
            primary = run.task.primary
            row[f"val_raw_{primary}"] = evaluate(run.parts.modules, run.task, run.val_loader)[primary]
        return None

    def on_fit_end(self, run, state) -> None:
        primary = run.task.primary
        raw = evaluate(run.parts.modules, run.task, run.test_loader, split="test")
        run.extras[f"test_{primary}_raw"] = raw[primary]

    def state_dict(self) -> dict:
        return {"averaged": self.ema.state_dict()} if self.ema is not None else {}  # saved at once

    def load_state_dict(self, state: dict) -> None:
        if state and self.ema is not None:
            load_ema(self.ema, state["averaged"])


@register_callback
def _weight_average(cfg) -> Callback | None:
    return WeightAverage(cfg.regularize.ema) if cfg.regularize.ema else None
