"""What a task is: the contract between a problem and the one training engine.

The engine (:mod:`deeper.train`) never looks inside a batch, a model or a
metric.  A task says:

- what it **builds** from a configuration (:meth:`Task.build`): named parts
  (modules, optimizers, schedulers; one ``net`` for classification, ``G`` and
  ``D`` for a GAN, ``q`` and a frozen ``target`` for DQN) and the sources its
  batches come from (a dataset loader, or an environment);
- how it **trains** on a batch (:meth:`Task.training_step`): by default one
  forward pass, one loss and one update of its only optimizer, taken by the
  engine's :class:`~deeper.train.stepper.Stepper` (mixed precision, clipping,
  weight noise, CUDA graphs); a task with several optimizers (a GAN: the
  discriminator, then the generator) calls ``stepper.update(name, loss)``
  itself, as often as it needs;
- how it **evaluates** a batch (:meth:`Task.evaluation_step`) and which
  **metrics** it reports (:attr:`Task.metrics`): sums that add up over batches
  (loss, correct answers) and torchmetrics metrics that may keep every
  prediction (top-5, a confusion matrix, mAP); the one :attr:`Task.primary`
  names decides "better" for early stopping, the best checkpoint and
  ``--restore-best``, in its declared direction;
- how an arbitrary image becomes an answer (:meth:`Task.predict`), for
  ``deeper predict``.

Tasks register by name (:func:`register_task`); ``deeper train --task NAME
--task-arg KEY=VALUE`` picks one and ``deeper tasks`` lists them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from deeper.errors import ConfigError, unknown_name

if TYPE_CHECKING:  # the engine's types, named in signatures only
    from deeper.train.build import BuildContext, Built
    from deeper.train.loop import LoopState
    from deeper.train.stepper import Stepper

#: named modules as a task step sees them (``{"net": model}``; wrapped for DDP while training)
Nets = Mapping[str, nn.Module]


@dataclass
class StepOutput:
    """What a training or evaluation step hands back to the engine."""

    loss: torch.Tensor | None  # the (last) loss back-propagated, detached or not; None for pure evaluation
    sums: dict[str, torch.Tensor]  # quantities summed over the batch (0-dim tensors), e.g. loss * n, correct
    count: int  # examples the sums cover
    outputs: Any = None  # the model's outputs (e.g. logits), for callers that want them
    preds: Any = (
        None  # what the task's torchmetrics metrics are updated with: ``metric.update(preds, target)``
    )
    target: Any = None


@dataclass(frozen=True)
class Metric:
    """A metric a task reports: its name in rows and results, its direction, its label in the epoch line."""

    name: str
    higher_is_better: bool = True
    label: str | None = None  # short name in the epoch line (None: the name); "" hides it there
    fmt: str = ".4f"

    @property
    def shown(self) -> str:
        return self.name if self.label is None else self.label


@dataclass(frozen=True)
class TaskOption:
    """One ``--task-arg KEY=VALUE`` a task takes: default, type and range."""

    default: Any
    help: str
    low: float | None = None  # inclusive bounds for numbers
    high: float | None = None
    choices: tuple | None = None

    def check(self, task: str, key: str, value):
        """``value`` as this option takes it (an int where a float is due becomes a float); else a ConfigError."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            what = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
            raise ConfigError(
                f"task {task!r}: option {key} must be {what.get(kind, kind.__name__)}, got {value!r}"
            )
        if self.choices is not None and value not in self.choices:
            raise ConfigError(
                f"task {task!r}: option {key} must be one of {', '.join(map(str, self.choices))}"
            )
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(f"task {task!r}: option {key} must be a finite number, got {value}")
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                raise ConfigError(
                    f"task {task!r}: option {key} must be in [{self.low}, {self.high}], got {value}"
                )
        return value


class Task:
    """Base class of tasks.  Subclasses set the class attributes and implement :meth:`build` and :meth:`loss`
    (one optimizer) or :meth:`training_step` (several), :meth:`evaluation_step`, and :meth:`predict`."""

    #: registry name (``--task NAME``)
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: what the task reports, in the order of the epoch line; ``loss`` first by convention
    metrics: ClassVar[tuple[Metric, ...]] = (Metric("loss", higher_is_better=False),)
    #: the metric that decides "better" (early stopping, best checkpoint, --restore-best)
    primary: ClassVar[str] = "loss"
    #: the kind of dataset the task trains on (``DatasetSpec.kind``: "images", "scenes", ..., or a tuple
    #: of kinds it takes; None: the task makes its own data and ``--data`` is not used)
    data_kind: ClassVar[str | tuple[str, ...] | None] = None
    #: the models that fit (registered with this family in the model registry; None: the task
    #: builds its own networks and ``--model`` is not used)
    model_family: ClassVar[str | None] = None
    #: the classification toolkit's options the task honours (see :func:`classification_options_used`);
    #: the engine refuses the others in one line rather than let them do nothing
    takes: ClassVar[frozenset[str]] = frozenset()
    #: the part written as the run's weights (``model.safetensors``)
    export: ClassVar[str] = "net"
    #: ``--task-arg`` options
    options: ClassVar[dict[str, TaskOption]] = {}
    #: what one "sample" of the throughput figure is (the epoch line says "img/s", "samples/s", ...)
    unit: ClassVar[str] = "img"
    #: whether the task's steps are one forward, one loss and one update (CUDA graphs can replay them)
    automatic: ClassVar[bool] = True
    #: whether ``--amp auto`` may train it in the CPU family's faster precision (deeper.hardware):
    #: only tasks whose accuracy was measured in it
    auto_amp: ClassVar[bool] = False
    #: training options (flat names) of a run of a few steps on tiny data: ``deeper train --dry-run``,
    #: and the contract test every registered task passes
    dry_run: ClassVar[dict] = {}

    def __init__(self, **task_args):
        unknown = sorted(set(task_args) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise ConfigError(
                f"task {self.name!r} does not take option(s) {', '.join(unknown)} (its options: {known})"
            )
        self.args = {k: o.check(self.name, k, task_args.get(k, o.default)) for k, o in self.options.items()}

    # ---- declared metrics
    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def higher_is_better(self, name: str) -> bool:
        """Direction of ``name`` (a bare metric or a row key such as ``val_accuracy``)."""
        for m in self.metrics:
            if name == m.name or name.endswith("_" + m.name):
                return m.higher_is_better
        return not name.endswith("loss")

    @classmethod
    def takes_data(cls, kind: str) -> bool:
        """Whether the task trains on datasets of ``kind`` (one of its :attr:`data_kind`)."""
        k = cls.data_kind
        return k is not None and (kind == k if isinstance(k, str) else kind in k)

    # ---- building
    def build(self, ctx: BuildContext) -> Built:
        raise NotImplementedError

    # ---- training
    def loss(self, nets: Nets, batch) -> StepOutput:
        """Forward pass and loss of one batch (tasks with one optimizer: the engine takes the step)."""
        raise NotImplementedError

    def training_step(self, nets: Nets, batch, stepper: Stepper, state: LoopState) -> StepOutput:
        """One batch of training.  Default: :meth:`loss`, then one update of the task's only optimizer."""
        return stepper.step(self, nets, batch, state)

    def evaluation_step(self, nets: Nets, batch) -> StepOutput:
        raise NotImplementedError

    def eval_metrics(self, split: str) -> dict:
        """Fresh torchmetrics metrics updated by every evaluation step of ``split`` (``val`` or ``test``)."""
        return {}

    def summarize(self, sums: dict[str, float], count: int) -> dict[str, float]:
        """The reported figures from accumulated sums (default: every sum divided by the count)."""
        return {k: v / count for k, v in sums.items()} if count else {}

    def finish(self, run, run_dir, test: dict) -> dict:
        """After the test evaluation (``test``: its figures), on the writing rank: extra ``result.json`` entries (a latency),
        and the place to draw the task's figures into ``run_dir``."""
        return {}

    # ---- task state saved in checkpoints (a replay buffer's position, a schedule of its own, ...)
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    # ---- using trained weights
    def load_model(self, path, name: str | None = None) -> tuple[nn.Module, dict]:
        """``(exported module, metadata)`` rebuilt from a weights file this task wrote."""
        from deeper.models.weights import model_from_weights

        return model_from_weights(path, name)

    def predict(
        self, model: nn.Module, meta: dict, images: list, *, device: torch.device, **options
    ) -> list[dict]:
        """One answer per image file (any size and format), as ``deeper predict --json`` prints it."""
        raise ConfigError(f"task {self.name!r} has no predict")

    def describe_prediction(self, answer: dict, **options) -> str:
        """One line of ``deeper predict``'s text output."""
        return ", ".join(f"{k} {v}" for k, v in answer.items() if k != "image")


_TASKS: dict[str, type[Task]] = {}
_LOADED = False


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register a :class:`Task` subclass under its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} has no task name")
    if cls.name in _TASKS:
        raise ValueError(f"task {cls.name!r} is already registered")
    names = [m.name for m in cls.metrics]
    if cls.primary not in names:
        raise TypeError(f"task {cls.name!r}: primary metric {cls.primary!r} is not among its metrics {names}")
    _TASKS[cls.name] = cls
    return cls


def load_tasks() -> None:
    """Import every module of :mod:`deeper.tasks` (each registers its tasks); once."""
    global _LOADED
    if _LOADED:
        return
    import importlib
    import pkgutil
    from pathlib import Path

    package = __name__.rpartition(".")[0]
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{package}.{info.name}")
    _LOADED = True


def list_tasks(pattern: str = "*") -> list[str]:
    load_tasks()
    return sorted(n for n in _TASKS if fnmatch.fnmatch(n, pattern))


def get_task_class(name: str) -> type[Task]:
    load_tasks()
    try:
        return _TASKS[name]
    except KeyError:
        raise unknown_name("task", name, _TASKS) from None


def create_task(name: str, task_args: dict | None = None) -> Task:
    return get_task_class(name)(**(task_args or {}))


#: every option of the classification toolkit that another task may not honour
CLASSIFICATION_OPTIONS = (
    "--augment", "--mixup", "--cutmix", "--input-noise", "--norm", "--bootstrap", "--sample-weights",
    "--folds", "--init-from", "--freeze",
)  # fmt: skip


def classification_options_used(cfg) -> list[str]:
    """The options of :data:`CLASSIFICATION_OPTIONS` that ``cfg`` (a TrainConfig) turns on."""
    r, s, t = cfg.regularize, cfg.sampling, cfg.transfer
    on = {
        "--augment": r.augment not in (None, "none"), "--mixup": bool(r.mixup), "--cutmix": bool(r.cutmix),
        "--input-noise": bool(r.input_noise), "--norm": r.norm not in (None, "none"),
        "--bootstrap": bool(s.bootstrap), "--sample-weights": s.sample_weights is not None,
        "--folds": s.folds is not None, "--init-from": t.init_from is not None, "--freeze": t.freeze != "none",
    }  # fmt: skip
    return [k for k in CLASSIFICATION_OPTIONS if on[k]]


#: the options every task on the multi-digit scenes takes (which digits make them, how many are scored)
SCENE_OPTIONS: dict[str, TaskOption] = {
    "source": TaskOption(
        "",
        "digits of the scenes: '' (the dataset's own) or 'digits' (scikit-learn's, offline)",
        choices=("", "digits"),
    ),
    "val_scenes": TaskOption(0, "validation scenes (0: the dataset's 1,000)", low=0, high=10**6),
    "test_scenes": TaskOption(0, "test scenes (0: the dataset's 2,000)", low=0, high=10**6),
}
