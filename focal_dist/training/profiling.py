"""`train.profile_steps`: a TensorFlow profiler trace of chosen steps, for TensorBoard.

`train.profile_steps = (first, last)` traces steps first..last (1-based, as logged; both
included) on the chief into `<workdir>/tensorboard/plugins/profile/<run>/`, where
TensorBoard's Profile tab (`tensorboard-plugin-profile`, installed by `make setup`)
shows it: the ops of every step, the input pipeline, host-device copies. `(0, 0)` (the
default) traces nothing. Like Keras's `TensorBoard(profile_batch=)`, but in steps.

The controller ends a multi-step call at step first - 1 and at step last, so the trace
holds exactly those steps however many a call runs (`steps_in_call`). A run resumed
inside the range traces from where it resumed to `last`.
"""

from __future__ import annotations

import tensorflow as tf
from absl import logging

OFF = (0, 0)


def check(value, steps=None) -> str | None:
    """Why `value` is not a valid `train.profile_steps` of a run of `steps` steps, or None.

    A range past the run's end is refused: it would trace nothing (or less than asked)
    while the run reported a trace."""
    if value == OFF:
        return None
    ok = (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 1 <= value[0] <= value[1]
        and (steps is None or value[1] <= steps)
    )
    if ok:
        return None
    last = "last" if steps is None else f"last <= train.steps ({steps})"
    return f"(first, last) with 1 <= first <= {last}, or (0, 0) for off"


class StepProfiler:
    """Starts the profiler before step `first` and stops it after step `last`."""

    def __init__(self, profile_steps, logdir: str, enabled: bool):
        first, last = tuple(profile_steps or OFF)
        self.first, self.last = first, last
        self.logdir = logdir
        self.enabled = enabled and last > 0
        self.running = False

    def boundaries(self, step: int) -> list[int]:
        """Steps a call starting after `step` must end on (see `steps_in_call`)."""
        if self.last == 0:
            return []
        return [b for b in (self.first - 1, self.last) if b > step]

    def before_call(self, step: int) -> None:
        if self.enabled and not self.running and self.first - 1 <= step < self.last:
            logging.info("profiling steps %d-%d into %s", step + 1, self.last, self.logdir)
            tf.profiler.experimental.start(self.logdir)
            self.running = True

    def after_call(self, step: int) -> None:
        if self.running and step >= self.last:
            self.stop()

    def stop(self) -> None:
        """Ends and writes the trace (also when the run stops early)."""
        if self.running:
            self.running = False
            tf.profiler.experimental.stop()
            logging.info("profile written under %s/plugins/profile", self.logdir)
