"""The actions around the controller's loop, one responsibility each.

Given to the controller in this order, so that an evaluation is in the checkpoint
saved at its step and a failing action is followed by a rescue save:

    Progress     per-call training scalars and, every train.log_every steps, a log line
    Profile      the profiler trace of train.profile_steps
    Evaluate     at every train.eval_every steps and at the end
    Checkpoint   every train.checkpoint_every steps, on SIGTERM, at the end; the
                 weights' finiteness first; quarantine after a divergence
    Export       at the end: the finite weights to export/ (chief)
"""

from __future__ import annotations

from collections.abc import Callable

from absl import logging

from focal_dist.serving.run_export import export_run
from focal_dist.training.controller import (
    Action,
    CallResult,
    NonFiniteLossError,
    NonFiniteWeightsError,
)


def next_multiple(every: int, step: int) -> list[int]:
    """[the first multiple of `every` after `step`], or [] when `every` is 0 (never)."""
    return [(step // every + 1) * every] if every else []


class Progress(Action):
    """Train scalars per call for TensorBoard; a log line with the loss, learning rate,
    gradient norm, throughput and ETA every `train.log_every` steps.

    The ETA divides the steps left by the speed of the calls after the first (which
    traces and compiles), so a resumed run's first estimate is not its start-up's; after
    the first call alone there is none yet.
    """

    def __init__(self, *, summaries, backend, train, learning_rate: Callable[[], float]):
        self.summaries = summaries
        self.backend = backend
        self.train = train
        self.learning_rate = learning_rate
        self._steps_timed = 0
        self._seconds_timed = 0.0
        self._first = True

    def after_call(self, result: CallResult) -> None:
        train, count = self.train, len(result.losses)
        if not self._first:
            self._steps_timed += count
            self._seconds_timed += result.seconds
        self._first = False
        examples_per_second = count * train.global_batch_size / max(result.seconds, 1e-9)
        learning_rate = self.learning_rate()
        self.summaries.scalars(
            {
                "loss": sum(result.losses) / count,
                "learning_rate": learning_rate,
                "examples_per_second": examples_per_second,
                "global_batch_size": train.global_batch_size,
                "num_replicas": self.backend.num_replicas_in_sync,
                "gradient_norm": result.norm,
            },
            result.step,
            prefix="train/",
        )
        if self.backend.is_chief and (result.step % train.log_every < count or result.last):
            left = train.steps - result.step
            if self._steps_timed:
                eta = f"{self._seconds_timed / self._steps_timed * left:.0f}s"
            else:  # Only the first call, which traced: its speed says nothing yet.
                eta = "0s" if not left else "-- (after the next call)"
            logging.info(
                "step %d/%d  loss %.5f  lr %.3g  grad_norm %.3g  %.0f examples/s  ETA %s",
                result.step,
                train.steps,
                result.losses[-1],
                learning_rate,
                result.norm,
                examples_per_second,
                eta,
            )


class Profile(Action):
    """`train.profile_steps`: calls end at the range's ends; the trace covers exactly it."""

    def __init__(self, profiler):
        self.profiler = profiler

    def boundaries(self, step):
        return self.profiler.boundaries(step)

    def before_call(self, step):
        self.profiler.before_call(step)

    def after_call(self, result):
        self.profiler.after_call(result.step)


class Evaluate(Action):
    """Exact eval metrics every `every` steps and at the end, written to TensorBoard.

    `evaluate()` returns (metrics, summed statistics) or None when the task has no
    eval set; `evaluation` is the task's `Evaluation` (its TensorBoard views);
    `pictures()` returns uint8 [N, H, W, 3] images of its first `num_images` eval
    examples, or None (only the chief draws them).
    """

    def __init__(self, *, evaluate, evaluation, summaries, every: int, log: bool, pictures=None):
        self.evaluate = evaluate
        self.evaluation = evaluation
        self.summaries = summaries
        self.every = every
        self.log = log
        self.pictures = pictures

    def boundaries(self, step):
        return next_multiple(self.every, step)

    def run(self, step: int) -> dict:
        outcome = self.evaluate()
        if outcome is None:
            return {}
        metrics, totals = outcome
        self.summaries.scalars(metrics, step, prefix="eval/")
        self.evaluation.write(self.summaries, totals, step)
        images = self.pictures() if self.pictures is not None else None
        for k, image in enumerate(images if images is not None else ()):
            self.summaries.image(f"eval/pictures/example_{k}", image, step)
        if self.log:
            logging.info(
                "step %d eval: loss %.5f %s",
                step,
                metrics["loss"],
                self.evaluation.log_line(metrics),
            )
        return metrics

    def after_call(self, result):
        if result.last or (self.every and result.step % self.every == 0):
            result.eval_metrics = self.run(result.step)

    def finish(self, result):
        if result.eval_metrics is None:  # Restored at the end from a checkpoint without eval.
            result.eval_metrics = self.run(result.step)


class Checkpoint(Action):
    """Saves ckpt-<step> with the losses since the previous one and the step's eval.

    Before each save every weight and slot is checked on every worker: a non-finite one
    stops the run unsaved. `step_losses` holds every saved step's loss from step 1.
    """

    def __init__(self, *, store, summaries, backend, count_non_finite, every: int, history=()):
        self.store = store
        self.summaries = summaries
        self.backend = backend
        self.count_non_finite = count_non_finite
        self.every = every
        self.step_losses = [loss for record in history for loss in record.losses]
        self.unsaved: list[float] = []  # Losses of the steps after the last checkpoint.
        self.saved_step = history[-1].step if history else 0

    def boundaries(self, step):
        return next_multiple(self.every, step)

    def after_call(self, result):
        self.unsaved += result.losses
        if result.stop or result.step % self.every == 0 or result.last:
            self.save(result.step, result.eval_metrics)

    def rescue(self, result, error):
        # An action before this one failed after the call: its steps are kept if the
        # weights are finite (this action's after_call did not run for it).
        logging.error(
            "%s after step %d: saving a checkpoint before it is raised",
            type(error).__name__,
            result.step,
        )
        self.unsaved += result.losses
        self.save(result.step, None)

    def save(self, step: int, eval_metrics: dict | None) -> None:
        count = float(self.count_non_finite())
        if self.backend.any_worker(count > 0):
            raise self.diverged(
                NonFiniteWeightsError, f"{count:.0f} weights are not finite after step {step}", []
            )
        self.summaries.flush()  # Everything up to `step` is on disk before ckpt-`step`.
        path = self.store.save(step, self.unsaved, eval_metrics)
        if path:
            logging.info("saved checkpoint %s", path)
        self.step_losses += self.unsaved
        self.unsaved = []
        self.saved_step = step

    def diverged(self, error_class, what: str, losses: list[float]) -> Exception:
        """The error to raise; the chief quarantines checkpoints saved after it began."""
        what += "; stopped without checkpointing it."
        if self.backend.is_chief:
            what += " " + self.store.after_divergence(self.unsaved + list(losses))
        self.summaries.flush()
        return error_class(what)

    def non_finite_loss(self, what: str, losses: list[float]) -> Exception:
        return self.diverged(NonFiniteLossError, what, losses)

    def finish(self, result):
        self.store.remove_scratch()


class Export(Action):
    """At the end, the finite weights to <workdir>/export/ (chief only): model.keras and,
    when the Decide action calibrated and chose a decision (`result.handoff`),
    export/saved_model (probabilities, decisions and logits for TF Serving) with
    export/deploy.json; the same, uncalibrated, for a task serving per-pixel masks
    (`serving_inputs()["masks"]`: segmentation). serving/run_export.py writes them."""

    def __init__(self, *, model, workdir: str, backend, count_non_finite, task=None, config=None):
        self.model = model
        self.workdir = workdir
        self.backend = backend
        self.count_non_finite = count_non_finite
        self.task = task
        self.config = config

    def finish(self, result):
        if self.backend.any_worker(float(self.count_non_finite()) > 0):
            raise NonFiniteWeightsError(
                f"weights are not finite at step {result.step}; not exported"
            )
        if not self.backend.is_chief:
            return
        export_run(
            self.model,
            self.workdir,
            task=self.task,
            config=self.config,
            calibration=result.handoff.get("calibration"),
            decision=result.handoff.get("decision"),
        )
