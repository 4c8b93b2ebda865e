"""The named parts of a run: modules, their optimizers and schedules.

Classification has one part, ``net``, with one optimizer.  A GAN has ``G`` and
``D`` with an optimizer each; DQN an online network ``q`` with an optimizer and
a ``target`` network with none; distillation a frozen ``teacher`` beside the
student ``net``.  The engine treats them alike: every module is checkpointed,
every optimizer and schedule is stepped through the
:class:`~deeper.train.stepper.Stepper` and saved, trained modules are wrapped
for DDP, and a module may be *replaced for evaluation* (by an average of its
weights, ``--ema``) without touching what is trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from deeper.errors import CheckpointError, ConfigError


@dataclass
class Parts:
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    schedulers: dict[str, object] = field(default_factory=dict)  # optimizer name -> schedule (or absent)
    #: the module written as the run's weights
    export: str = "net"
    #: DDP wrappers of trained modules (set by the engine when distributed)
    wrapped: dict[str, nn.Module] = field(default_factory=dict)
    #: modules evaluated and saved instead of the trained ones (e.g. an EMA of the weights)
    averaged: dict[str, nn.Module] = field(default_factory=dict)

    def __post_init__(self):
        if self.export not in self.modules:
            raise ConfigError(
                f"the exported part {self.export!r} is not among the modules {sorted(self.modules)}"
            )
        unknown = sorted(set(self.schedulers) - set(self.optimizers))
        if unknown:
            raise ConfigError(f"schedule(s) for unknown optimizer(s) {unknown}")

    @classmethod
    def single(cls, model: nn.Module, optimizer=None, scheduler=None, *, name: str = "net") -> Parts:
        """One module (and at most one optimizer and schedule), as classification has."""
        opts = {name: optimizer} if optimizer is not None else {}
        scheds = {name: scheduler} if scheduler is not None else {}
        return cls({name: model}, opts, scheds, export=name)

    def for_training(self) -> dict[str, nn.Module]:
        """The modules as training steps call them (DDP wrappers where distributed)."""
        return {**self.modules, **self.wrapped}

    def for_eval(self) -> dict[str, nn.Module]:
        """The modules as evaluation and the saved weights see them (averages where kept)."""
        return {**self.modules, **self.averaged}

    @property
    def exported(self) -> nn.Module:
        return self.for_eval()[self.export]

    def only_optimizer(self) -> str:
        """The name of the one optimizer (a :class:`ConfigError` when there are several or none)."""
        if len(self.optimizers) != 1:
            raise ConfigError(
                f"this needs a task with one optimizer; it has {sorted(self.optimizers) or 'none'}"
            )
        return next(iter(self.optimizers))

    def train(self, mode: bool = True) -> None:
        for m in self.modules.values():
            m.train(mode)

    # ---- checkpoints: every module's tensors under "<part>.<key>"
    def module_state(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": v for name, m in self.modules.items() for k, v in m.state_dict().items()}

    def load_module_state(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        for name, m in self.modules.items():
            prefix = f"{name}."
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                m.load_state_dict(state)
            except RuntimeError as e:
                first = "; ".join(s.strip() for s in str(e).strip().splitlines()[:2])
                raise CheckpointError(f"{source}: the saved part {name!r} does not fit ({first})") from None

    def optimizer_state(self) -> dict:
        return {
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items() if s is not None},
        }

    def load_optimizer_state(self, saved: dict, source: str, *, replay_steps: int | None = None) -> None:
        """Optimizers and schedules as saved.  ``replay_steps``: the run's length changed since the
        checkpoint (a new ``--epochs`` on resume), so each schedule is the run's new one stepped to where
        the run is, not the saved one (a plateau schedule, fed by epochs, keeps its saved state)."""
        from deeper.train.schedule import Plateau, replay

        opts, scheds = saved.get("optimizers", {}), saved.get("schedulers", {})
        if set(opts) != set(self.optimizers):
            raise CheckpointError(
                f"{source}: saved optimizers {sorted(opts)}, the run has {sorted(self.optimizers)}"
            )
        for n, o in self.optimizers.items():
            o.load_state_dict(opts[n])
        for n, s in self.schedulers.items():
            if s is None:
                continue
            if replay_steps is not None and not isinstance(s, Plateau):
                replay(s, replay_steps)
            elif n in scheds:
                s.load_state_dict(scheds[n])
