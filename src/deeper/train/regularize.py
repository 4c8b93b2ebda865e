"""Regularizers of the notes that act on the data or around the loop.

- :class:`Mix`: mixup (Zhang et al. 2018) and cutmix (Yun et al. 2019): each batch is
  blended with a shuffled copy of itself, and the labels become the matching class
  probabilities (they sum to one);
- :class:`InputNoise`: Gaussian noise on the inputs (the notes' "noise robustness";
  noise on the *weights* is taken by :class:`~deeper.train.stepper.Stepper`, as is
  gradient clipping);
- :class:`TrainTransform`: the batch pipeline of a training run (augmentation, then
  mixing, then noise) with its own seeded generator, plugged in through
  ``BatchLoader(transform=...)``; its generator state is saved in checkpoints with
  the loader's state, so a resumed run draws the same augmentations;
- :class:`EarlyStopping`: stops after ``patience`` epochs without a better
  validation score and puts the best weights back (restore-best).

Label smoothing lives in :class:`~deeper.tasks.classify.ClassificationTask`; weight decay
in the optimizers (:mod:`deeper.train.optim`); dropout and normalisation in the models.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from deeper.data.augment import Augment, parse_augment
from deeper.errors import ConfigError
from deeper.runtime import notice
from deeper.train.callbacks import Callback, register_callback


def _np_rng(g: torch.Generator) -> np.random.Generator:
    """A NumPy generator seeded from ``g`` (for the few per-batch scalars torch cannot draw with a generator)."""
    seed = torch.randint(0, 2**62, (1,), generator=g, device=g.device).item()
    return np.random.default_rng(seed)


def one_hot(y: torch.Tensor, num_classes: int, dtype=torch.float32) -> torch.Tensor:
    return y.to(dtype) if y.ndim == 2 else F.one_hot(y, num_classes).to(dtype)


class Mix:
    """Mixup and/or cutmix with ``lam ~ Beta(alpha, alpha)`` per batch (one of the two at random when both are on).

    Mixup: ``x = lam * x + (1 - lam) * x[perm]``.  Cutmix: a box of area ``(1 - lam)``
    of each image is pasted from ``x[perm]`` (clipped at the border, ``lam`` then set to
    the share of the image left).  Either way the labels become
    ``lam * onehot(y) + (1 - lam) * onehot(y[perm])``.
    """

    def __init__(self, num_classes: int, *, mixup: float = 0.0, cutmix: float = 0.0):
        if mixup < 0 or cutmix < 0 or not (mixup or cutmix):
            raise ConfigError(
                f"--mixup and --cutmix take alpha >= 0 (one of them > 0), got {mixup}, {cutmix}"
            )
        self.num_classes, self.mixup, self.cutmix = num_classes, mixup, cutmix

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        rng = _np_rng(g)
        b, _, h, w = x.shape
        perm = torch.randperm(b, generator=g, device=g.device).to(x.device)
        use_cutmix = bool(self.cutmix) and (not self.mixup or rng.random() < 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = float(rng.beta(alpha, alpha))
        if use_cutmix:
            ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
            y1, y2 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
            x1, x2 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
            x = x.clone()
            x[:, :, y1:y2, x1:x2] = x[perm][:, :, y1:y2, x1:x2]
            lam = 1 - (y2 - y1) * (x2 - x1) / (h * w)
        else:
            x = x * lam + x[perm] * (1 - lam)
        t = one_hot(y, self.num_classes)
        return x, t * lam + t[perm] * (1 - lam), {"lam": lam, "cutmix": use_cutmix}


class InputNoise:
    """Adds ``N(0, std^2)`` to every pixel and clips back to [0, 1]."""

    def __init__(self, std: float):
        if not std > 0:
            raise ConfigError(f"--input-noise must be positive, got {std}")
        self.std = std

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=g, device=g.device, dtype=x.dtype).to(x.device)
        return (x + self.std * noise).clamp_(0.0, 1.0)


class TrainTransform:
    """Augment, then mix, then add noise; all draws from one generator seeded with ``seed``.

    Usable as ``BatchLoader(transform=...)``.  ``state_dict``/``load_state_dict`` save
    and restore the generator, which is all it takes to replay the same batches.
    """

    def __init__(
        self,
        augment: Augment | None = None,
        mix: Mix | None = None,
        noise: InputNoise | None = None,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        self.augment, self.mix, self.noise = augment or None, mix, noise
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.last: dict = {}

    def __bool__(self) -> bool:
        return bool(self.augment or self.mix or self.noise)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        if self.augment:
            x = self.augment(x, g)
        if self.mix is not None:
            x, y, self.last = self.mix(x, y, g)
        if self.noise is not None:
            x = self.noise(x, g)
        return x, y

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])

    def describe(self) -> str:
        parts = []
        if self.augment:
            parts.append(f"augment {self.augment.ops}")
        if self.mix is not None:
            parts.append(f"mixup {self.mix.mixup:g} cutmix {self.mix.cutmix:g}")
        if self.noise is not None:
            parts.append(f"input noise {self.noise.std:g}")
        return ", ".join(parts)


def build_train_transform(cfg, num_classes: int, device: torch.device) -> TrainTransform | None:
    """The training batch pipeline a (resolved) config asks for, or ``None``."""
    ops = parse_augment(cfg.regularize.augment, cfg.data)
    augment = Augment(ops) if ops else None
    mix = (
        Mix(num_classes, mixup=cfg.regularize.mixup or 0.0, cutmix=cfg.regularize.cutmix or 0.0)
        if cfg.regularize.mixup or cfg.regularize.cutmix
        else None
    )
    noise = InputNoise(cfg.regularize.input_noise) if cfg.regularize.input_noise else None
    t = TrainTransform(augment, mix, noise, seed=cfg.seed * 1_000_003 + 7, device=device)
    return t if t else None


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without a better ``monitor`` value; optionally restore the best weights.

    ``monitor`` is a key of the epoch's metrics row (default: the validation score of the
    task's primary metric, e.g. ``val_accuracy``), better in the direction the task declares
    for it (loss lower, accuracy higher).
    With ``patience=None`` the run is never stopped, but the best weights are still restored.
    The best weights are kept in memory and in checkpoints, so restore-best survives a resume.
    """

    name = "early_stopping"

    def __init__(
        self,
        patience: int | None,
        *,
        monitor: str | None = None,
        restore_best: bool = True,
        min_delta: float = 0.0,
    ):
        if patience is not None and patience < 1:
            raise ConfigError(f"--early-stop patience must be at least 1 epoch, got {patience}")
        self.patience, self.monitor, self.restore_best, self.min_delta = (
            patience,
            monitor,
            restore_best,
            min_delta,
        )
        self.best: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.higher = True  # the monitored metric's direction (set from the task at the start)

    def on_fit_start(self, run, state) -> None:
        if run.val_loader is None:
            raise ConfigError("early stopping and --restore-best need a validation split (--val-size > 0)")
        if self.monitor is None:
            self.monitor = f"val_{run.task.primary}"
        self.higher = run.task.higher_is_better(self.monitor)

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        if not self.higher:
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, run, state, row: dict) -> str | None:
        value = row.get(self.monitor)
        if value is None:
            raise ConfigError(f"early stopping: the metric {self.monitor!r} is not in the epoch's row")
        if self._better(value):
            self.best, self.best_epoch, self.bad_epochs = value, row["epoch"], 0
            if self.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in run.final_model.state_dict().items()}
            return None
        self.bad_epochs += 1
        if self.patience is not None and self.bad_epochs >= self.patience:
            return (
                f"early stop: {self.monitor} not better for {self.bad_epochs} epochs "
                f"(best {self.best:.4f} at epoch {self.best_epoch})"
            )
        return None

    def on_fit_end(self, run, state) -> None:
        if self.restore_best and self.best_state is not None and self.best_epoch != len(state.history):
            run.final_model.load_state_dict(self.best_state)
            notice(f"restored the weights of epoch {self.best_epoch} (best {self.monitor} {self.best:.4f})")

    def state_dict(self) -> dict:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "monitor": self.monitor,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.best, self.best_epoch = state["best"], state["best_epoch"]
            self.bad_epochs, self.monitor = state["bad_epochs"], state["monitor"]
            self.best_state = state["best_state"]


@register_callback
def _early_stopping(cfg) -> Callback | None:
    restore = (
        cfg.regularize.restore_best
        if cfg.regularize.restore_best is not None
        else cfg.regularize.early_stop is not None
    )
    if cfg.regularize.early_stop is None and not restore:
        return None
    return EarlyStopping(cfg.regularize.early_stop, restore_best=restore)
