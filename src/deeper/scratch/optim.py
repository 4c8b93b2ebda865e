"""Optimizers, written from the update formulas of the notes (004, "optimizer").

Each takes the network's parameters and gradients as two dicts with the same
keys (``update(params, grads)``, the book's interface) and changes the
parameter arrays **in place**.  ``g`` is the gradient, ``eta`` the learning rate:

========  ===============================================================
SGD       ``W -= eta g``
Momentum  ``a = beta a + g;  W -= eta a``
Nesterov  ``a = beta a + g;  W -= eta (g + beta a)``  (the look-ahead
          gradient of the notes, rewritten so it needs only the gradient at
          ``W``: the usual change of variables, also PyTorch's ``nesterov=True``)
Adagrad   ``G += g^2;  W -= eta g / (sqrt(G) + eps)``
Adadelta  ``G = rho G + (1-rho) g^2;  D = sqrt(H + eps) / sqrt(G + eps) g;
          H = rho H + (1-rho) D^2;  W -= eta D``  (``eta = 1``: no learning rate)
RMSprop   ``G = alpha G + (1-alpha) g^2;  W -= eta g / (sqrt(G) + eps)``
Adam      ``m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
          W -= eta (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)``
========  ===============================================================

``eps`` sits outside the square root for Adagrad, RMSprop and Adam, as in the
book's code and PyTorch (the notes put it inside; it only guards against a
division by zero).  ``weight_decay`` adds ``wd * W`` to the gradient (L2).
Defaults are PyTorch's, so ``--optimizer NAME`` means the same in both engines.

float16 parameters are updated through a float32 *master copy* kept by the
optimizer (the usual mixed-precision recipe): a learning-rate-sized step is
often smaller than half precision can resolve next to the weight itself.
"""

from __future__ import annotations

import numpy as np

from deeper.errors import ConfigError, unknown_name
from deeper.scratch.backend import get_xp


class Optimizer:
    #: hyper-parameters besides ``lr`` (attribute names; also the CLI's optimizer options)
    options: dict[str, float] = {}
    default_lr: float = 0.01

    def __init__(self, lr: float | None = None, weight_decay: float = 0.0, **options):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ConfigError(
                f"optimizer {self.name!r} has no option {', '.join(unknown)} (its options: {known})"
            )
        self.lr = self.default_lr if lr is None else float(lr)
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if weight_decay < 0:
            raise ConfigError(f"weight decay must be >= 0, got {weight_decay}")
        self.weight_decay = float(weight_decay)
        for k, v in {**self.options, **options}.items():
            setattr(self, k, float(v))
        self.t = 0  # steps taken
        self.state: dict[str, dict] = {}  # per parameter: the optimizer's running arrays
        self.master: dict[str, object] = {}  # float32 copies of float16 parameters

    @property
    def name(self) -> str:
        return next((k for k, v in OPTIMIZERS.items() if v is type(self)), type(self).__name__)

    def update(self, params: dict, grads: dict) -> None:
        """One step: change every array of ``params`` in place using ``grads``."""
        self.t += 1
        for key, p in params.items():
            g = grads[key]
            w = p
            if p.dtype == np.float16:
                if key not in self.master:
                    self.master[key] = p.astype(np.float32)
                w, g = self.master[key], g.astype(np.float32)
            if self.weight_decay:
                g = g + self.weight_decay * w
            self.step(w, g, self.state.setdefault(key, {}))
            if w is not p:
                p[...] = w

    def step(self, w, g, s: dict) -> None:
        """Update one parameter array ``w`` in place; ``s`` holds its running state."""
        raise NotImplementedError

    @staticmethod
    def _zeros(s: dict, name: str, like):
        if name not in s:
            s[name] = get_xp(like).zeros_like(like)
        return s[name]

    def state_dict(self) -> dict:
        """Plain values and the running arrays themselves (the trainer copies them into tensors)."""
        return {
            "t": self.t,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "options": {k: getattr(self, k) for k in self.options},
            "state": {k: dict(v) for k, v in self.state.items()},
            "master": dict(self.master),
        }

    def load_state_dict(self, sd: dict, xp=np) -> None:
        self.t, self.lr, self.weight_decay = int(sd["t"]), float(sd["lr"]), float(sd["weight_decay"])
        for k, v in sd["options"].items():
            setattr(self, k, float(v))
        self.state = {k: {n: xp.array(a, copy=True) for n, a in v.items()} for k, v in sd["state"].items()}
        self.master = {k: xp.array(a, copy=True) for k, a in sd["master"].items()}


class SGD(Optimizer):
    """``W -= eta g``."""

    def step(self, w, g, s):
        w -= self.lr * g


class Momentum(Optimizer):
    """Velocity: ``a = beta a + g;  W -= eta a``."""

    options = {"momentum": 0.9}

    def step(self, w, g, s):
        a = self._zeros(s, "a", w)
        a *= self.momentum
        a += g
        w -= self.lr * a


class Nesterov(Optimizer):
    """Nesterov accelerated gradient: ``a = beta a + g;  W -= eta (g + beta a)``."""

    options = {"momentum": 0.9}

    def step(self, w, g, s):
        a = self._zeros(s, "a", w)
        a *= self.momentum
        a += g
        w -= self.lr * (g + self.momentum * a)


class AdaGrad(Optimizer):
    """Per-weight learning rates shrinking with the sum of squared gradients."""

    options = {"eps": 1e-10}

    def step(self, w, g, s):
        G = self._zeros(s, "G", w)
        G += g * g
        w -= self.lr * g / (get_xp(w).sqrt(G) + self.eps)


class AdaDelta(Optimizer):
    """Adagrad with a decaying window, and step sizes in the units of the weights (no learning rate)."""

    default_lr = 1.0
    options = {"rho": 0.9, "eps": 1e-6}

    def step(self, w, g, s):
        xp = get_xp(w)
        G, H = self._zeros(s, "G", w), self._zeros(s, "H", w)
        G *= self.rho
        G += (1 - self.rho) * g * g
        delta = xp.sqrt(H + self.eps) / xp.sqrt(G + self.eps) * g
        H *= self.rho
        H += (1 - self.rho) * delta * delta
        w -= self.lr * delta


class RMSprop(Optimizer):
    """Adagrad with an exponential moving average of squared gradients."""

    options = {"alpha": 0.99, "eps": 1e-8}

    def step(self, w, g, s):
        G = self._zeros(s, "G", w)
        G *= self.alpha
        G += (1 - self.alpha) * g * g
        w -= self.lr * g / (get_xp(w).sqrt(G) + self.eps)


class Adam(Optimizer):
    """Momentum (``m``) and RMSprop (``v``) together, both bias-corrected."""

    default_lr = 0.001
    options = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

    def step(self, w, g, s):
        xp = get_xp(w)
        m, v = self._zeros(s, "m", w), self._zeros(s, "v", w)
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        m_hat = m / (1 - self.beta1**self.t)
        v_hat = v / (1 - self.beta2**self.t)
        w -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "adadelta": AdaDelta,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def list_optimizers() -> list[str]:
    return sorted(OPTIMIZERS)


def create_optimizer(
    name: str, *, lr: float | None = None, weight_decay: float = 0.0, **options
) -> Optimizer:
    """A scratch optimizer by name (the same names as ``--optimizer`` of the torch engine)."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise unknown_name("scratch-engine optimizer", name, OPTIMIZERS) from None
    return cls(lr=lr, weight_decay=weight_decay, **options)
