"""The optimizer registry (``--optimizer NAME``, ``--optimizer-arg KEY=VALUE``).

Each entry wraps a ``torch.optim`` class with a default learning rate and the
hyper-parameters a user may set (their names follow the notes: ``momentum``
for beta of Momentum/NAG, ``rho`` for gamma of Adadelta, ``alpha`` for gamma of
RMSprop, ``beta1``/``beta2`` for Adam).  ``create_optimizer`` rejects options an
optimizer does not take, with the list of those it does.

Weight decay comes in the two forms of the notes: ``--weight-decay`` is the L2
penalty alpha/2 ||W||^2 added to the loss (its gradient alpha W joins the
gradient, so adaptive optimizers rescale it too), except for ``adamw``, whose
decay is *decoupled* (W -= lr alpha W, outside Adam's rescaling; Loshchilov &
Hutter 2019).  Each optimizer's update rule is tested against the notes'
formulas in ``tests/test_optim.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from deeper.errors import ConfigError, unknown_name


@dataclass(frozen=True)
class OptimizerEntry:
    name: str
    build: Callable[..., torch.optim.Optimizer]
    default_lr: float
    description: str
    defaults: dict[str, object] = field(default_factory=dict)
    default_weight_decay: float = 0.0


_OPTIMIZERS: dict[str, OptimizerEntry] = {}


def register_optimizer(
    name: str, *, default_lr: float, description: str, default_weight_decay: float = 0.0, **defaults
):
    """Register ``build(params, *, lr, weight_decay, **options)``; ``defaults`` are its options."""

    def deco(build):
        if name in _OPTIMIZERS:
            raise ValueError(f"optimizer {name!r} is already registered")
        _OPTIMIZERS[name] = OptimizerEntry(
            name, build, default_lr, description, defaults, default_weight_decay
        )
        return build

    return deco


def list_optimizers() -> list[str]:
    return sorted(_OPTIMIZERS)


def get_optimizer_entry(name: str) -> OptimizerEntry:
    try:
        return _OPTIMIZERS[name]
    except KeyError:
        raise unknown_name("optimizer", name, _OPTIMIZERS) from None


def _check_option(optimizer: str, key: str, value, default) -> object:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"optimizer {optimizer!r}: option {key} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"optimizer {optimizer!r}: option {key} must be a number, got {value!r}")
    return float(value)


def create_optimizer(
    name: str, params: Iterable, *, lr: float | None = None, weight_decay: float | None = None, **options
) -> torch.optim.Optimizer:
    """Build optimizer ``name``; ``lr`` and ``weight_decay`` default to the entry's, options are checked."""
    entry = get_optimizer_entry(name)
    unknown = sorted(set(options) - set(entry.defaults))
    if unknown:
        known = ", ".join(entry.defaults) or "none"
        raise ConfigError(f"optimizer {name!r} has no option {', '.join(unknown)} (its options: {known})")
    options = {k: _check_option(name, k, v, entry.defaults[k]) for k, v in options.items()}
    lr = entry.default_lr if lr is None else lr
    if not lr > 0:
        raise ConfigError(f"learning rate must be positive, got {lr}")
    weight_decay = entry.default_weight_decay if weight_decay is None else weight_decay
    if weight_decay < 0:
        raise ConfigError(f"weight decay must be >= 0, got {weight_decay}")
    try:
        return entry.build(params, lr=lr, weight_decay=weight_decay, **{**entry.defaults, **options})
    except ValueError as e:  # torch's own range checks ("Invalid beta parameter at index 0: 1.5")
        raise ConfigError(f"optimizer {name!r}: {e}") from None


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


@register_optimizer(
    "nesterov",
    default_lr=0.01,
    description="Nesterov accelerated gradient: momentum with the gradient taken at the look-ahead point",
    momentum=0.9,
)
def _nesterov(params, *, lr, weight_decay, momentum):
    # torch keeps the parameters at the look-ahead point W - lr*beta*a of the notes' formula
    # (Sutskever et al. 2013); the two forms give the same trajectory (tested).
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)


@register_optimizer(
    "adagrad",
    default_lr=0.01,
    description="Adagrad: lr / sqrt(sum of squared gradients) per parameter",
    eps=1e-10,
    lr_decay=0.0,
    initial_accumulator_value=0.0,
)
def _adagrad(params, *, lr, weight_decay, eps, lr_decay, initial_accumulator_value):
    return torch.optim.Adagrad(
        params, lr=lr, eps=eps, lr_decay=lr_decay,
        initial_accumulator_value=initial_accumulator_value, weight_decay=weight_decay,
    )  # fmt: skip


@register_optimizer(
    "adadelta",
    default_lr=1.0,
    description="Adadelta: step sqrt(EMA of squared steps) / sqrt(EMA of squared gradients); no lr needed (1.0)",
    rho=0.9,
    eps=1e-6,
)
def _adadelta(params, *, lr, weight_decay, rho, eps):
    return torch.optim.Adadelta(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)


@register_optimizer(
    "rmsprop",
    default_lr=0.001,
    description="RMSprop: lr / sqrt(EMA of squared gradients) per parameter",
    alpha=0.99,
    eps=1e-8,
    momentum=0.0,
    centered=False,
)
def _rmsprop(params, *, lr, weight_decay, alpha, eps, momentum, centered):
    return torch.optim.RMSprop(
        params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, centered=centered, weight_decay=weight_decay
    )


@register_optimizer(
    "adamw",
    default_lr=0.001,
    description="AdamW: Adam with decoupled weight decay (W -= lr * wd * W, default wd 0.01)",
    default_weight_decay=0.01,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
)
def _adamw(params, *, lr, weight_decay, beta1, beta2, eps):
    return torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
