"""Training: the Task seam, the step math, the controller and what a run reports.

    from focal_dist.training import KerasTask, Task, train_task

Importing this package imports TensorFlow but initialises no device, so a mirrored
backend over logical CPUs can still be built afterwards.
"""

from focal_dist.training.api import run, train_task
from focal_dist.training.base_task import Task, TaskReport
from focal_dist.training.keras_task import KerasTask

__all__ = ["KerasTask", "Task", "TaskReport", "run", "train_task"]
