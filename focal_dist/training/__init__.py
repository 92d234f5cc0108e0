"""Training: the step math, the controller and its actions, checkpoints and reports.

    from focal_dist.training import KerasTask, Task, train_task

The Task seam lives in `focal_dist.tasks` (re-exported here). Importing this package
imports TensorFlow but initialises no device, so a mirrored backend over logical CPUs
can still be built afterwards.
"""

from focal_dist.tasks.base import LossTerm, Task, TaskReport
from focal_dist.tasks.evaluation import Evaluation
from focal_dist.tasks.keras_task import KerasTask
from focal_dist.training.api import run, train_task

__all__ = ["Evaluation", "KerasTask", "LossTerm", "Task", "TaskReport", "run", "train_task"]
