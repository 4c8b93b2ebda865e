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
#: (``weight_decay`` falls back to the optimizer's own default: 0, or 0.01 for ``adamw``.)
FALLBACKS: dict[str, object] = {"label_smoothing": 0.0}


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
    # speed (issue 6; see docs/speed.md)
    amp: str = "off"  # off, bf16 or fp16: autocast (+ grad scaler for fp16)
    compile: bool = False  # torch.compile the model (falls back to eager with a notice)
    cuda_graphs: bool = False  # replay forward+backward as a captured CUDA graph (deeper.accel.graphs)
    nproc: int = 1  # data-parallel processes launched by `deeper train --nproc` (torchrun)
    max_restarts: int = 0  # with --nproc: restarts after a failure, resuming from the last checkpoint
    # accuracy toolkit (issue 4; see docs/accuracy.md).  None: from the recipe, else off.
    optimizer_kwargs: dict = field(default_factory=dict)  # e.g. {"momentum": 0.95}
    schedule_kwargs: dict = field(default_factory=dict)  # e.g. {"every": 5, "gamma": 0.1}
    warmup: float | None = None  # epochs of linear warm-up in front of the schedule
    augment: str | None = None  # spec of deeper.data.augment ("default", "rotate=10,elastic=34", "none")
    mixup: float | None = None  # Beta(alpha, alpha) of mixup
    cutmix: float | None = None  # Beta(alpha, alpha) of cutmix
    input_noise: float | None = None  # std of Gaussian noise on the inputs
    weight_noise: float | None = None  # std of Gaussian noise on the weights during each forward/backward
    clip_grad: float | None = None  # max global gradient norm
    early_stop: int | None = None  # patience in epochs (on the validation split)
    restore_best: bool | None = None  # end with the best-validation weights [on with early_stop]
    ema: float | None = None  # decay of an exponential moving average of the weights (evaluated and saved)
    dropout: float | None = None  # the model's dropout rate (models that take `dropout`)
    norm: str | None = None  # normalisation layers (models that take `norm`): batch, layer, instance, group
    ensemble: int = 1  # train this many members (seeds seed, seed+1, ...) and evaluate their ensemble
    bootstrap: bool = False  # train on a bootstrap resample of the training split (bagging)
    boost: bool = False  # with ensemble: boosting (SAMME by resampling, deeper.train.boost)
    boost_rate: float = 1.0  # boosting's shrinkage of each member's vote weight
    sample_weights: str | None = None  # per-image draw probabilities of a boosting member
    folds: int | None = None  # k-fold cross-validation: validate on fold `fold` of `folds`
    fold: int | None = None
    # transfer learning (issue 3; see docs/zoo.md)
    init_from: str | None = None  # weights file or run folder to start from; the classifier is replaced
    freeze: str = "none"  # none, or features: train the classifier only
    # the from-scratch engine (issue 5; see docs/scratch.md)
    engine: str = "torch"  # torch, or numpy/cupy: deeper.scratch
    dtype: str | None = None  # precision of the numpy/cupy engines: float64, float32 (default) or float16

    def resolved(self) -> TrainConfig:
        """A copy with the recipe's defaults filled in and every value checked."""
        if self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {self.recipe!r} (known: {', '.join(RECIPES)})")
        defaults = {**FALLBACKS, **RECIPES[self.recipe]}
        filled = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        cfg = replace(self, **filled)
        if cfg.weight_decay is None:
            from deeper.train.optim import get_optimizer_entry

            cfg.weight_decay = get_optimizer_entry(cfg.optimizer).default_weight_decay
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
        if self.amp not in ("off", "bf16", "fp16"):
            raise ConfigError(f"--amp must be off, bf16 or fp16, got {self.amp!r}")
        if self.nproc < 1 or self.max_restarts < 0:
            raise ConfigError(
                f"--nproc must be >= 1 and --max-restarts >= 0, got {self.nproc}, {self.max_restarts}"
            )
        if self.cuda_graphs and self.compile:
            raise ConfigError("--cuda-graphs and --compile both change how steps launch; choose one")
        if self.val_size is not None and self.val_size < 0:
            raise ConfigError(f"--val-size must be >= 0, got {self.val_size}")
        self._check_accuracy_options()
        if self.freeze not in ("none", "features"):
            raise ConfigError(f"--freeze must be none or features, got {self.freeze!r}")
        self._check_engine()

    def _check_engine(self) -> None:
        if self.engine not in ("torch", "numpy", "cupy"):
            raise ConfigError(f"--engine must be torch, numpy or cupy, got {self.engine!r}")
        if self.dtype is not None and self.engine == "torch":
            raise ConfigError(
                "--dtype sets the precision of --engine numpy/cupy; the torch engine uses --amp"
            )
        if self.dtype not in (None, "float64", "float32", "float16"):
            raise ConfigError(f"--dtype must be float64, float32 or float16, got {self.dtype!r}")

    def _check_accuracy_options(self) -> None:
        for name in ("warmup", "mixup", "cutmix", "input_noise", "weight_noise"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ConfigError(f"--clip-grad must be positive, got {self.clip_grad}")
        if self.early_stop is not None and self.early_stop < 1:
            raise ConfigError(f"--early-stop must be at least 1 epoch, got {self.early_stop}")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise ConfigError(f"--ema takes a decay in [0, 1) (0: off), e.g. 0.999; got {self.ema}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.ensemble < 1:
            raise ConfigError(f"--ensemble must be at least 1, got {self.ensemble}")
        if self.boost and (self.ensemble < 2 or self.bootstrap):
            raise ConfigError("--boost trains an ensemble: it needs --ensemble K >= 2, and not --bootstrap")
        if not self.boost_rate > 0:
            raise ConfigError(f"--boost-rate must be positive, got {self.boost_rate}")
        if self.sample_weights is not None and self.bootstrap:
            raise ConfigError("a run resamples its training split one way: bootstrap or sample weights")
        if (self.folds is None) != (self.fold is None):
            raise ConfigError("k-fold validation needs both folds and fold")
        if self.folds is not None and not (self.folds >= 2 and 0 <= self.fold < self.folds):
            raise ConfigError(f"fold {self.fold} of {self.folds}: need folds >= 2 and 0 <= fold < folds")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}")
        return cls(**data)
