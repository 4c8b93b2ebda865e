"""Tasks: what the one training engine can learn (``deeper tasks`` lists them).

One module per task; each registers its :class:`~deeper.tasks.base.Task`
subclass with :func:`~deeper.tasks.base.register_task`.  The registry imports
every module of this package the first time it is asked for a task, so adding
a module is enough to add a task.
"""

from deeper.tasks.base import (
    Metric,
    Nets,
    StepOutput,
    Task,
    TaskOption,
    create_task,
    get_task_class,
    list_tasks,
    register_task,
)

__all__ = [
    "Metric",
    "Nets",
    "StepOutput",
    "Task",
    "TaskOption",
    "create_task",
    "get_task_class",
    "list_tasks",
    "register_task",
]
