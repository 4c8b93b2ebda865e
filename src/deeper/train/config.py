"""The training configuration and the named recipes.

Options left as ``None`` are filled from the recipe (``--recipe``); anything the
user sets explicitly wins.  The resolved configuration is saved as
``config.yaml`` in the run folder and is what ``--resume`` continues.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from deeper.errors import ConfigError

#: Named recipes: defaults for the options a user does not set.
RECIPES: dict[str, dict[str, object]] = {
    # The book's chapter 8 recipe: Adam lr 0.001, batch 100, 20 epochs, nothing else.
    "book": {"optimizer": "adam", "lr": 0.001, "batch_size": 100, "epochs": 20, "schedule": "constant"},
    # deeper's default: the quickest way we found to >= 99.4% with the same network
    # (one-cycle Adam and label smoothing; the search is recorded in the README "Results").
    "fast": {
        "optimizer": "adam",
        "lr": 0.004,
        "batch_size": 128,
        "epochs": 6,
        "schedule": "onecycle",
        "label_smoothing": 0.1,
    },
}
#: Values for options that neither the user nor the recipe set.
FALLBACKS: dict[str, object] = {"weight_decay": 0.0, "label_smoothing": 0.0}


@dataclass
class TrainConfig:
    model: str = "deep-convnet"
    data: str = "mnist"
    recipe: str = "fast"
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    label_smoothing: float | None = None
    val_size: int | float | None = None  # None: 5,000 for large datasets, else 10%
    subset: int | None = None  # train on only the first N training images (after the split)
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    channels_last: bool | None = None  # None: on for convolutional models on the CPU
    data_dir: str | None = None
    out: str | None = None
    max_steps: int | None = None
    checkpoint_every: int | None = None  # steps; every epoch end regardless
    eval_batch_size: int = 1000
    tensorboard: bool = True
    progress: bool | None = None  # None: a bar when stderr is a terminal
    model_kwargs: dict = field(default_factory=dict)

    def resolved(self) -> TrainConfig:
        """A copy with the recipe's defaults filled in and every value checked."""
        if self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {self.recipe!r} (known: {', '.join(RECIPES)})")
        defaults = {**FALLBACKS, **RECIPES[self.recipe]}
        filled = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        cfg = replace(self, **filled)
        cfg.check()
        return cfg

    def check(self) -> None:
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size,
        }
        for name, value in positive.items():
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        for name in ("max_steps", "checkpoint_every", "subset"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.val_size is not None and self.val_size < 0:
            raise ConfigError(f"--val-size must be >= 0, got {self.val_size}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}")
        return cls(**data)
