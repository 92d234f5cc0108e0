"""What is trained, by name: `task.name` picks the Task class, as `model.name` picks a model.

    task = focal_dist.tasks.get_task(config)      # config.task.name -> a Task
    class MyTask(focal_dist.tasks.Task): ...      # or bring your own (tasks/base.py)

Classification (binary, multi-label, multi-class), segmentation (per-pixel classes) and
`KerasTask` (your own Keras model and example datasets) share the data sources of
`focal_dist.data.sources`, the class weighting of `tasks/class_weighting.py` and the
bucketed metrics of `tasks/bucket_metrics.py`.
"""

from __future__ import annotations

import importlib

from focal_dist.tasks.base import LossTerm, Task, TaskReport
from focal_dist.tasks.evaluation import Evaluation

# task.name -> "module:Class" under focal_dist.tasks, imported when asked for.
_TASKS = {
    "binary": "classification:ClassificationTask",
    "multi_label": "classification:ClassificationTask",
    "multiclass": "classification:ClassificationTask",
    "segmentation": "segmentation:SegmentationTask",
}
TASKS = tuple(_TASKS)


def task_class(name: str) -> type[Task]:
    """The Task class of `task.name`; ValueError naming the known names otherwise."""
    if name not in _TASKS:
        raise ValueError(f"task.name must be one of {', '.join(TASKS)}; got {name!r}")
    module, cls = _TASKS[name].split(":")
    return getattr(importlib.import_module(f"focal_dist.tasks.{module}"), cls)


def get_task(config) -> Task:
    """The task `config.task.name` names, built from the whole config."""
    return task_class(config.task.name)(config)


__all__ = ["TASKS", "Evaluation", "LossTerm", "Task", "TaskReport", "get_task", "task_class"]
