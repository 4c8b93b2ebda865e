"""The training engine: one loop for every task, runs of named parts, checkpoints, callbacks.

>>> from deeper.train import TrainConfig, fit
>>> result = fit(TrainConfig(model="deep-convnet", data="digits", epochs=1))

- :mod:`~deeper.train.entry`: :func:`fit`, the one entry point (engine, ensembles, processes);
- :mod:`~deeper.train.engine`: a whole run in one process, resumable bit for bit;
- :mod:`~deeper.train.run`, :mod:`~deeper.train.build`, :mod:`~deeper.train.parts`: what a task builds;
- :mod:`~deeper.train.loop`, :mod:`~deeper.train.stepper`, :mod:`~deeper.train.metrics`: the loop, the
  optimisation step of every optimizer, metrics that add up across batches and processes;
- :mod:`~deeper.train.amp`, :mod:`~deeper.train.compile`, :mod:`~deeper.train.graphs`,
  :mod:`~deeper.train.distributed`, :mod:`~deeper.train.launch`: what the loop uses to go faster;
- the accuracy toolkit: optimizers, schedules, regularizers, weight averaging, ensembles, k-fold.

Tasks live in :mod:`deeper.tasks`.
"""

import sys
from types import ModuleType

from deeper.train.build import BuildContext, Built
from deeper.train.callbacks import Callback, register_callback
from deeper.train.config import RECIPES, TrainConfig
from deeper.train.engine import Interrupted, run_engine
from deeper.train.entry import fit
from deeper.train.loop import LoopState, evaluate, train_one_epoch
from deeper.train.optim import create_optimizer, list_optimizers, register_optimizer
from deeper.train.parts import Parts
from deeper.train.run import Run, build_run
from deeper.train.schedule import create_schedule, list_schedules, register_schedule
from deeper.train.stepper import Stepper

__all__ = [
    "RECIPES",
    "BuildContext",
    "Built",
    "Callback",
    "Interrupted",
    "LoopState",
    "Parts",
    "Run",
    "Stepper",
    "TrainConfig",
    "build_run",
    "create_optimizer",
    "create_schedule",
    "evaluate",
    "fit",
    "list_optimizers",
    "list_schedules",
    "register_callback",
    "register_optimizer",
    "register_schedule",
    "run_engine",
    "train_one_epoch",
]


class _CallablePackage(ModuleType):
    """``deeper.train(...)`` trains and returns the model (:func:`deeper.api.train`); the package is still
    the engine's package (``deeper.train.fit``, ``deeper.train.TrainConfig``, ...)."""

    def __call__(self, *args, **options):
        from deeper.api import train

        return train(*args, **options)


sys.modules[__name__].__class__ = _CallablePackage
