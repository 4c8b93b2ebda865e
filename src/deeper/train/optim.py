"""The optimizer registry (``--optimizer NAME``).

Each entry wraps a ``torch.optim`` class with the book's default learning rate
and the hyper-parameters a user may set.  ``create_optimizer`` rejects options an
optimizer does not take, with the list of those it does.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from deeper.errors import ConfigError


@dataclass(frozen=True)
class OptimizerEntry:
    name: str
    build: Callable[..., torch.optim.Optimizer]
    default_lr: float
    description: str
    defaults: dict[str, object] = field(default_factory=dict)


_OPTIMIZERS: dict[str, OptimizerEntry] = {}


def register_optimizer(name: str, *, default_lr: float, description: str, **defaults):
    def deco(build):
        if name in _OPTIMIZERS:
            raise ValueError(f"optimizer {name!r} is already registered")
        _OPTIMIZERS[name] = OptimizerEntry(name, build, default_lr, description, defaults)
        return build

    return deco


def list_optimizers() -> list[str]:
    return sorted(_OPTIMIZERS)


def get_optimizer_entry(name: str) -> OptimizerEntry:
    try:
        return _OPTIMIZERS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _OPTIMIZERS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown optimizer {name!r}{hint} (known: {', '.join(sorted(_OPTIMIZERS))})"
        ) from None


def create_optimizer(
    name: str, params: Iterable, *, lr: float | None = None, weight_decay: float = 0.0, **options
) -> torch.optim.Optimizer:
    entry = get_optimizer_entry(name)
    unknown = sorted(set(options) - set(entry.defaults))
    if unknown:
        known = ", ".join(entry.defaults) or "none"
        raise ConfigError(f"optimizer {name!r} has no option {', '.join(unknown)} (its options: {known})")
    lr = entry.default_lr if lr is None else lr
    if not lr > 0:
        raise ConfigError(f"learning rate must be positive, got {lr}")
    if weight_decay < 0:
        raise ConfigError(f"weight decay must be >= 0, got {weight_decay}")
    return entry.build(params, lr=lr, weight_decay=weight_decay, **{**entry.defaults, **options})


@register_optimizer("sgd", default_lr=0.01, description="plain stochastic gradient descent: W -= lr * dL/dW")
def _sgd(params, *, lr, weight_decay):
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


@register_optimizer(
    "momentum", default_lr=0.01, description="SGD with momentum: v = m*v - lr*g; W += v", momentum=0.9
)
def _momentum(params, *, lr, weight_decay, momentum):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@register_optimizer(
    "adam",
    default_lr=0.001,
    description="Adam: momentum + per-parameter scaling by the RMS of gradients, bias-corrected",
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
)
def _adam(params, *, lr, weight_decay, beta1, beta2, eps):
    return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
