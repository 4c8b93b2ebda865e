"""The training configuration, grouped by concern, and the named recipes.

A :class:`TrainConfig` names *what* is trained (task, model, data, recipe,
seed, the task's and the model's own options) and holds the rest in groups:

========== ====================================================================
group      options
========== ====================================================================
optim      epochs, batch size, optimizer, learning rate, schedule, warm-up, clipping
regularize label smoothing, dropout, normalisation, augmentation, mixing, noise,
           early stopping, weight averaging (EMA)
sampling   the validation split, subsets, k-fold, bootstrap and boosting resamples
ensemble   members, boosting
transfer   starting weights and what stays frozen
speed      mixed precision, compile, CUDA graphs, memory layout, processes,
           the scratch engine's dtype
run        where it runs and writes: device, output folder, data folder,
           checkpoints, logs, step limits
========== ====================================================================

Every option also has a *flat* name, unique across groups (the command-line
flag without its dashes: ``lr``, ``val_size``, ``ensemble``), so
``TrainConfig(model="lenet5", lr=0.01, epochs=3)`` and ``cfg.replace(seed=1)``
work without naming groups; reading goes through the group
(``cfg.optim.lr``).  Options left as ``None`` are filled from the recipe
(``--recipe``); anything the user sets explicitly wins.  The resolved
configuration is saved (nested, by group) as ``config.yaml`` in the run folder
and is what ``--resume`` continues.  :meth:`TrainConfig.check` validates every
value against its field's type with pydantic (strict: a quoted ``"3"`` in a
hand-edited ``config.yaml`` is refused, not coerced), then against its range.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields, replace

from deeper.errors import ConfigError

#: Named recipes: defaults (by flat name) for the options a user does not set.
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
        "amp": "auto",  # bfloat16 autocast where the CPU family wins with it (deeper.hardware)
    },
}
#: Values for options that neither the user nor the recipe set.
#: (``weight_decay`` falls back to the optimizer's own default: 0, or 0.01 for ``adamw``.)
FALLBACKS: dict[str, object] = {"label_smoothing": 0.0, "amp": "off"}


@dataclass
class OptimOptions:
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    optimizer_kwargs: dict = field(default_factory=dict)  # e.g. {"momentum": 0.95}
    schedule_kwargs: dict = field(default_factory=dict)  # e.g. {"every": 5, "gamma": 0.1}
    warmup: float | None = None  # epochs of linear warm-up in front of the schedule
    clip_grad: float | None = None  # max global gradient norm


@dataclass
class RegularizeOptions:
    """The accuracy toolkit's regularizers (issue 4; docs/accuracy.md).  ``None``: from the recipe, else off."""

    label_smoothing: float | None = None
    dropout: float | None = None  # the model's dropout rate (models that take `dropout`)
    norm: str | None = None  # normalisation layers (models that take `norm`): batch, layer, instance, group
    augment: str | None = None  # spec of deeper.data.augment ("default", "rotate=10,elastic=34", "none")
    mixup: float | None = None  # Beta(alpha, alpha) of mixup
    cutmix: float | None = None  # Beta(alpha, alpha) of cutmix
    input_noise: float | None = None  # std of Gaussian noise on the inputs
    weight_noise: float | None = None  # std of Gaussian noise on the weights during each forward/backward
    early_stop: int | None = None  # patience in epochs (on the validation split)
    restore_best: bool | None = None  # end with the best-validation weights [on with early_stop]
    ema: float | None = None  # decay of an exponential moving average of the weights (evaluated and saved)


@dataclass
class SamplingOptions:
    val_size: int | float | None = None  # None: 5,000 for large datasets, else 10%
    subset: int | None = None  # train on only the first N training images (after the split)
    eval_batch_size: int = 1000
    bootstrap: bool = False  # train on a bootstrap resample of the training split (bagging)
    sample_weights: str | None = None  # per-image draw probabilities of a boosting member
    folds: int | None = None  # k-fold cross-validation: validate on fold `fold` of `folds`
    fold: int | None = None


@dataclass
class EnsembleOptions:
    members: int = 1  # (flat name: ensemble) train this many members (seeds seed, seed+1, ...)
    boost: bool = False  # with ensemble: boosting (SAMME by resampling, deeper.train.boost)
    boost_rate: float = 1.0  # boosting's shrinkage of each member's vote weight


@dataclass
class TransferOptions:
    """Transfer learning (issue 3; docs/zoo.md)."""

    init_from: str | None = None  # weights file or run folder to start from; the classifier is replaced
    freeze: str = "none"  # none, or features: train the classifier only


@dataclass
class SpeedOptions:
    """Speed (issue 6; docs/speed.md) and the scratch engine's precision (issue 5; docs/scratch.md)."""

    amp: str | None = None  # off, auto, bf16 or fp16: autocast (+ grad scaler for fp16) [recipe; else off]
    compile: bool = False  # torch.compile the model (falls back to eager with a notice)
    cuda_graphs: bool = False  # replay forward+backward as a captured CUDA graph (deeper.train.graphs)
    channels_last: bool | None = None  # None: on for convolutional models on the CPU
    nproc: int = 1  # data-parallel processes launched by `deeper train --nproc` (torchrun)
    max_restarts: int = 0  # with --nproc: restarts after a failure, resuming from the last checkpoint
    dtype: str | None = None  # precision of the numpy/cupy engines: float64, float32 (default) or float16


@dataclass
class RunOptions:
    out: str | None = None
    data_dir: str | None = None
    device: str = "auto"
    deterministic: bool = False
    max_steps: int | None = None
    checkpoint_every: int | None = None  # steps; every epoch end regardless
    tensorboard: bool = True
    progress: bool | None = None  # None: a bar when stderr is a terminal


#: pydantic's view of the dataclasses: strict types (no coercion), instances checked again each time
STRICT = {"strict": True, "revalidate_instances": "always"}
for _cls in (OptimOptions, RegularizeOptions, SamplingOptions, EnsembleOptions, TransferOptions, SpeedOptions,
             RunOptions):  # fmt: skip
    _cls.__pydantic_config__ = STRICT

#: group name -> options class
GROUPS: dict[str, type] = {
    "optim": OptimOptions,
    "regularize": RegularizeOptions,
    "sampling": SamplingOptions,
    "ensemble": EnsembleOptions,
    "transfer": TransferOptions,
    "speed": SpeedOptions,
    "run": RunOptions,
}
#: flat names that differ from the field's name (the flag is --ensemble K)
_ALIASES = {"ensemble": ("ensemble", "members")}
#: flat option name -> (group, field)
FLAT: dict[str, tuple[str, str]] = {
    f.name: (g, f.name) for g, cls in GROUPS.items() for f in fields(cls) if f.name != "members"
} | _ALIASES
_FLAT_NAME = {where: flat for flat, where in _ALIASES.items()}
TOP_LEVEL = ("task", "model", "data", "recipe", "seed", "engine", "task_args", "model_kwargs")

# The types an option's declared type admits (fields are annotated as strings: ``from __future__``).
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "dict": (dict,),
    "str | None": (str, type(None)),
    "int | None": (int, type(None)),
    "float | None": (float, int, type(None)),
    "bool | None": (bool, type(None)),
    "int | float | None": (int, float, type(None)),
}
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               dict: "a mapping", type(None): "null"}  # fmt: skip


@dataclass(init=False)
class TrainConfig:
    task: str = "classify"
    model: str = "deep-convnet"
    data: str = "mnist"
    recipe: str = "fast"
    seed: int = 0
    engine: str = "torch"  # torch, or numpy/cupy: deeper.scratch
    task_args: dict = field(default_factory=dict)  # the task's own options (`deeper tasks`)
    model_kwargs: dict = field(default_factory=dict)
    optim: OptimOptions = field(default_factory=OptimOptions)
    regularize: RegularizeOptions = field(default_factory=RegularizeOptions)
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    ensemble: EnsembleOptions = field(default_factory=EnsembleOptions)
    transfer: TransferOptions = field(default_factory=TransferOptions)
    speed: SpeedOptions = field(default_factory=SpeedOptions)
    run: RunOptions = field(default_factory=RunOptions)

    def __init__(self, **options):
        """Top-level fields, whole groups (``optim=OptimOptions(...)``) and flat option names, in that order."""
        for name in TOP_LEVEL:
            default = next(f for f in fields(TrainConfig) if f.name == name)
            value = default.default_factory() if callable(default.default_factory) else default.default
            setattr(self, name, options.pop(name, value))
        for group, cls in GROUPS.items():
            value = options.get(group)
            if group in FLAT and not isinstance(value, cls):  # the flat `ensemble` (member count)
                value = None
            else:
                options.pop(group, None)
            if value is not None and not isinstance(value, cls):
                raise ConfigError(f"{group} must be a {cls.__name__}, got {type(value).__name__}")
            setattr(self, group, replace(value) if value is not None else cls())
        unknown = sorted(set(options) - set(FLAT))
        if unknown:
            raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}")
        for name, value in options.items():
            group, attr = FLAT[name]
            setattr(getattr(self, group), attr, value)

    __pydantic_config__ = STRICT

    def replace(self, **options) -> TrainConfig:
        """A copy with ``options`` (top-level or flat names) changed."""
        return TrainConfig(**{**self._shallow(), **options})

    def _shallow(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def flat(self) -> dict:
        """Every option by its flat name (top-level fields included)."""
        out = {name: getattr(self, name) for name in TOP_LEVEL}
        for name, (group, attr) in FLAT.items():
            out[name] = getattr(getattr(self, group), attr)
        return out

    def resolved(self) -> TrainConfig:
        """A copy with the recipe's defaults filled in and every value checked."""
        if self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {self.recipe!r} (known: {', '.join(RECIPES)})")
        flat = self.flat()
        defaults = {**FALLBACKS, **RECIPES[self.recipe]}
        cfg = self.replace(**{k: v for k, v in defaults.items() if flat[k] is None})
        if cfg.optim.weight_decay is None:
            from deeper.train.optim import get_optimizer_entry

            cfg.optim.weight_decay = get_optimizer_entry(cfg.optim.optimizer).default_weight_decay
        cfg.check()
        return cfg

    def check(self) -> None:
        """Every value of the right type and in its documented range (:data:`deeper.validate.RANGES`),
        every combination allowed; a :class:`ConfigError` naming the option otherwise."""
        from deeper.validate import check_option, plain_data

        self._check_types()
        for name, value in self.flat().items():
            check_option(name, value)
        for name in ("task_args", "model_kwargs"):
            plain_data(getattr(self, name), name)
        for name in ("optimizer_kwargs", "schedule_kwargs"):
            plain_data(getattr(self.optim, name), name)
        s = self.speed
        if s.amp not in (None, "off", "auto", "bf16", "fp16"):
            raise ConfigError(f"--amp must be off, auto, bf16 or fp16, got {s.amp!r}")
        if s.cuda_graphs and s.compile:
            raise ConfigError("--cuda-graphs and --compile both change how steps launch; choose one")
        v = self.sampling.val_size
        if v is not None and not 0 < v < 1 and v != int(v):
            raise ConfigError(f"--val-size must be a fraction in (0, 1) or a whole count, got {v}")
        self._check_resampling()
        if self.transfer.freeze not in ("none", "features"):
            raise ConfigError(f"--freeze must be none or features, got {self.transfer.freeze!r}")
        self._check_engine()

    def _check_types(self) -> None:
        """Each option of the type its field declares (a hand-edited config.yaml may hold anything):
        pydantic validates the dataclasses strictly (no "2" for 2, no true for 1); the first error
        becomes a one-line :class:`ConfigError` naming the option as its flag."""
        from pydantic import ValidationError

        try:
            _validator().validate_python(self)
        except ValidationError as e:
            loc = e.errors()[0]["loc"]
            owner, name = (getattr(self, loc[0]), loc[1]) if loc[0] in GROUPS else (self, loc[0])
            f = next(f for f in fields(owner) if f.name == name)
            allowed, value = _TYPES[f.type], getattr(owner, name)
            flat = "ensemble" if f.name == "members" else f.name
            names = [_TYPE_NAMES[t] for t in allowed if not (t is int and float in allowed)]
            where = f"--{flat.replace('_', '-')}" if flat in FLAT else flat
            raise ConfigError(f"{where} must be {' or '.join(names)}, got {value!r}") from None

    def _check_engine(self) -> None:
        if self.engine not in ("torch", "numpy", "cupy"):
            raise ConfigError(f"--engine must be torch, numpy or cupy, got {self.engine!r}")
        dtype = self.speed.dtype
        if dtype is not None and self.engine == "torch":
            raise ConfigError(
                "--dtype sets the precision of --engine numpy/cupy; the torch engine uses --amp"
            )
        if dtype not in (None, "float64", "float32", "float16"):
            raise ConfigError(f"--dtype must be float64, float32 or float16, got {dtype!r}")

    def _check_resampling(self) -> None:
        e, s = self.ensemble, self.sampling
        if e.boost and (e.members < 2 or s.bootstrap):
            raise ConfigError("--boost trains an ensemble: it needs --ensemble K >= 2, and not --bootstrap")
        if s.sample_weights is not None and s.bootstrap:
            raise ConfigError("a run resamples its training split one way: bootstrap or sample weights")
        if (s.folds is None) != (s.fold is None):
            raise ConfigError("k-fold validation needs both folds and fold")
        if s.folds is not None and not (s.folds >= 2 and 0 <= s.fold < s.folds):
            raise ConfigError(f"fold {s.fold} of {s.folds}: need folds >= 2 and 0 <= fold < folds")

    def to_dict(self) -> dict:
        """The nested document saved as ``config.yaml``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> TrainConfig:
        """A configuration from :meth:`to_dict`'s document (or a flat one); a :class:`ConfigError` names a bad key."""
        if not isinstance(data, dict):
            raise ConfigError(f"a configuration must be a mapping of options, got {type(data).__name__}")
        from deeper.train.provenance import DESCRIPTIVE

        options: dict = {}
        for key, value in data.items():
            if key in DESCRIPTIVE:  # what a run resolved and which versions ran it: a record, not options
                continue
            if key in GROUPS and isinstance(value, dict):
                known = {f.name for f in fields(GROUPS[key])}
                unknown = sorted(set(value) - known)
                if unknown:
                    raise ConfigError(
                        f"unknown configuration key(s) in {key}: {', '.join(map(str, unknown))}"
                    )
                options.update({_FLAT_NAME.get((key, k), k): v for k, v in value.items()})
            else:
                options[key] = value
        return cls(**options)


@functools.cache
def _validator():
    """pydantic's validator of a whole :class:`TrainConfig` (built once: it compiles a schema)."""
    from pydantic import TypeAdapter

    return TypeAdapter(TrainConfig)
