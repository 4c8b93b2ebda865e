"""The training engine: one loop, tasks, optimizer and schedule registries, checkpoints.

>>> from deeper.train import TrainConfig, fit
>>> result = fit(TrainConfig(model="deep-convnet", data="digits", epochs=1))
"""

from deeper.train.callbacks import Callback, register_callback
from deeper.train.config import RECIPES, TrainConfig
from deeper.train.fit import Interrupted, fit
from deeper.train.loop import LoopState, Updater, evaluate, train_one_epoch
from deeper.train.optim import create_optimizer, list_optimizers, register_optimizer
from deeper.train.run import Run, build_run
from deeper.train.schedule import create_schedule, list_schedules, register_schedule
from deeper.train.tasks import ClassificationTask, MetricSums, StepOutput, Task

__all__ = [
    "RECIPES",
    "Callback",
    "Interrupted",
    "Run",
    "register_callback",
    "ClassificationTask",
    "LoopState",
    "MetricSums",
    "StepOutput",
    "Task",
    "TrainConfig",
    "Updater",
    "build_run",
    "create_optimizer",
    "create_schedule",
    "evaluate",
    "fit",
    "list_optimizers",
    "list_schedules",
    "register_optimizer",
    "register_schedule",
    "train_one_epoch",
]
