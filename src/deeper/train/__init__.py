"""The training engine: one loop, tasks, optimizer and schedule registries, checkpoints.

>>> from deeper.train import TrainConfig, fit
>>> result = fit(TrainConfig(model="deep-convnet", data="digits", epochs=1))
"""

from deeper.train.config import RECIPES, TrainConfig
from deeper.train.loop import LoopState, build_run, evaluate, fit, train_one_epoch
from deeper.train.optim import create_optimizer, list_optimizers, register_optimizer
from deeper.train.schedule import create_schedule, list_schedules, register_schedule
from deeper.train.tasks import ClassificationTask, MetricSums, StepOutput, Task

__all__ = [
    "RECIPES",
    "ClassificationTask",
    "LoopState",
    "MetricSums",
    "StepOutput",
    "Task",
    "TrainConfig",
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
