"""The controller: a short loop of `tf.function` calls with actions around it.

As in Orbit's `Controller.train` with `train_actions`: the loop trains one call of
steps, then hands what it did to each action in order; an action decides for itself
whether its moment has come (evaluate, checkpoint, write summaries, profile, export).
The controller never knows the model or the backend's kind; actions are passed in.

    while step < steps:
        n = steps of the next call: <= steps_per_loop, ending on every action's boundary
        actions.before_call(step); losses = train(n); step += n
        a NaN or inf loss -> NonFiniteLossError (the checkpoint action names what is kept)
        actions.after_call(result)            # result.stop: SIGTERM on any worker
    actions.finish(result)                    # only when train.steps are done

An error raised by an action (an evaluation that fails, a summary that cannot be written)
does not cost the steps trained before it: the controller asks the actions to `rescue`
(the checkpoint action saves the step, if the weights are finite) and re-raises.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
from absl import logging


class NonFiniteLossError(FloatingPointError):
    """The training loss (or, for the subclass, a weight) became NaN or inf."""


class NonFiniteWeightsError(NonFiniteLossError):
    """A weight or optimizer slot became NaN or inf; it was neither saved nor exported."""


@dataclasses.dataclass
class CallResult:
    """What one call trained, as the actions see it (they may add to it).

    Attributes:
      step: the global step after the call.
      losses: the call's per-step global losses.
      norm: the gradient norm of its last step.
      seconds: the call's wall time.
      stop: SIGTERM on some worker: save and end after this call.
      last: this call reached train.steps.
      eval_metrics: set by the evaluation action when it ran at `step`.
      extras: sections the finishing actions add to summary.json (calibration, decision).
      handoff: what a finishing action hands to the ones after it, not written anywhere
        (the Decide action's calibration and decision, which the Export action exports).
    """

    step: int
    losses: list[float]
    norm: float = 0.0
    seconds: float = 0.0
    stop: bool = False
    last: bool = False
    eval_metrics: dict | None = None
    extras: dict = dataclasses.field(default_factory=dict)
    handoff: dict = dataclasses.field(default_factory=dict)


class Action:
    """One responsibility around the loop; every hook is optional."""

    def boundaries(self, step: int) -> Sequence[int]:
        """Steps after `step` that a call must end on (an evaluation, a checkpoint)."""
        return ()

    def before_call(self, step: int) -> None:
        """Runs before the call that starts after `step`."""

    def after_call(self, result: CallResult) -> None:
        """Runs after each call, in the order the actions were given."""

    def rescue(self, result: CallResult, error: Exception) -> None:
        """Another action raised `error` after `result`: keep what can be kept."""

    def finish(self, result: CallResult) -> None:
        """Runs once, when the run has trained all its steps."""


def steps_in_next_call(step: int, steps: int, steps_per_loop: int, boundaries=()) -> int:
    """At most `steps_per_loop`, ending on the next of `boundaries` and at `steps`."""
    return min([steps, step + steps_per_loop, *(b for b in boundaries if b > step)]) - step


class Controller:
    """Runs `train_call(num_steps) -> (losses, norm)` until `steps`, around `actions`.

    Args:
      train_call: trains that many steps; returns their losses and the last norm.
      actions: run after every call in this order.
      steps: the run's last step.
      steps_per_loop: the most steps per call.
      stop_requested: () -> True when any worker was asked to stop (a collective).
      on_non_finite: (what, the call's losses up to the bad one) -> the exception to raise.
    """

    def __init__(
        self,
        *,
        train_call: Callable,
        actions: Sequence[Action],
        steps: int,
        steps_per_loop: int,
        stop_requested: Callable[[], bool],
        on_non_finite: Callable[[str, list], Exception],
    ):
        if steps_per_loop < 1:
            raise ValueError(f"train.steps_per_loop must be >= 1, got {steps_per_loop}")
        self.train_call = train_call
        self.actions = tuple(actions)
        self.steps = steps
        self.steps_per_loop = steps_per_loop
        self.stop_requested = stop_requested
        self.on_non_finite = on_non_finite

    def run(self, step: int, eval_metrics: dict | None = None) -> CallResult:
        """Trains from `step` (whose evaluation, if restored, is `eval_metrics`); returns
        the last call's result (`last` False: stopped by SIGTERM before the end)."""
        result = CallResult(step, [], last=step >= self.steps, eval_metrics=eval_metrics)
        while step < self.steps:
            boundaries = [b for action in self.actions for b in action.boundaries(step)]
            num_steps = steps_in_next_call(step, self.steps, self.steps_per_loop, boundaries)
            for action in self.actions:
                action.before_call(step)
            start = time.perf_counter()
            losses, norm = self.train_call(num_steps)
            seconds = time.perf_counter() - start
            finite = np.isfinite(losses)
            if not finite.all():
                bad = int(np.argmin(finite))
                raise self.on_non_finite(
                    f"training loss is {losses[bad]} at step {step + bad + 1}", losses[: bad + 1]
                )
            step += num_steps
            result = CallResult(
                step, losses, norm, seconds, stop=self.stop_requested(), last=step >= self.steps
            )
            self._after_call(result)
            if result.stop and not result.last:
                return result
        for action in self.actions:
            action.finish(result)
        return result

    def _after_call(self, result: CallResult) -> None:
        for number, action in enumerate(self.actions):
            try:
                action.after_call(result)
            except Exception as error:
                for other in self.actions[number + 1 :]:
                    try:
                        other.rescue(result, error)
                    except Exception as failure:  # The first error is the one to report.
                        logging.error("%s could not rescue: %s", type(other).__name__, failure)
                raise
