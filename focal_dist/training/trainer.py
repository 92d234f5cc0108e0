"""The controller: when to train, evaluate, checkpoint and write summaries, and resume.

It never knows the model, and the task never knows the backend; the step math (the
forward and backward pass and the one collective per step) is in `training/step.py`,
checkpoints in `training/checkpoints.py`, what a run reports in `training/reporting.py`.

A run is a sequence of processes that ends when one of them finishes the steps:
- start: the chief picks the newest usable checkpoint S and every worker restores that
  same one (the choice is agreed through a collective, not read by each worker);
- SIGTERM: the loop stops at the end of its call, every worker saves step S, the chief
  writes summary.json with `preempted` (not `complete`) and the CLI exits 143 so that
  job controllers retry;
- a non-finite loss or weight raises without saving; the checkpoints written after the
  divergence began are moved aside (`checkpoints.diverged_checkpoints`);
- summaries of steps <= S are flushed before ckpt-S is saved, and a restart at S marks
  step S + 1 for TensorBoard, so the logs read as one run;
- a run whose summary.json says it finished train.steps is left untouched.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from focal_dist.distribute import Backend
from focal_dist.training import divergence, reporting, resume
from focal_dist.training import metrics as metrics_lib
from focal_dist.training.checkpoints import CheckpointStore
from focal_dist.training.model import build_optimizer
from focal_dist.training.profiling import StepProfiler
from focal_dist.training.step import StepOptions, TrainStep
from focal_dist.training.summaries import SummaryWriter


class NonFiniteLossError(FloatingPointError):
    """The training loss (or, for the subclass, a weight) became NaN or inf."""


class NonFiniteWeightsError(NonFiniteLossError):
    """A weight or optimizer slot became NaN or inf; it was neither saved nor exported."""


class Trainer:
    """Trains `task` under `backend` as the config says; `train()` returns the summary."""

    def __init__(self, config, task, backend: Backend, workdir: str):
        self.config = config
        self.task = task
        self.backend = backend
        self.workdir = workdir
        train = config.train
        if train.global_batch_size % backend.num_replicas_in_sync:
            raise ValueError(
                f"train.global_batch_size {train.global_batch_size} is not divisible by the "
                f"{backend.num_replicas_in_sync} replicas of distribution {backend.name!r}"
            )
        if train.steps_per_loop < 1:
            raise ValueError(f"train.steps_per_loop must be >= 1, got {train.steps_per_loop}")
        self._stop_requested = False
        self._has_eval_set = None
        if train.mixed_precision:
            keras.mixed_precision.set_dtype_policy("mixed_float16")
        with backend.scope():
            self.model = task.build_model()
            optimizer = build_optimizer(config.optimizer, backend.num_replicas_in_sync)
            if train.mixed_precision:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
        backend.prepare_optimizer(self.optimizer)
        self.step = TrainStep(
            model=self.model,
            optimizer=self.optimizer,
            backend=backend,
            per_example_loss=task.per_example_loss,
            probabilities_and_targets=task.probabilities_and_targets,
            num_outputs=task.num_outputs,
            options=StepOptions(
                per_replica_batch_size=train.global_batch_size // backend.num_replicas_in_sync,
                clip_global_norm=config.optimizer.clip_global_norm,
                jit_compile=train.jit_compile,
                mixed_precision=train.mixed_precision,
            ),
        )
        self.checkpoints = CheckpointStore.for_backend(
            tf.train.Checkpoint(model=self.model, optimizer=self.optimizer),
            workdir,
            backend,
            keep=train.keep_checkpoints,
        )
        self.summaries = SummaryWriter(os.path.join(workdir, "tensorboard"), backend.is_chief)
        self.profiler = StepProfiler(
            train.get("profile_steps"), self.summaries.logdir, backend.is_chief
        )
        # One reduction over every variable: cheap next to a checkpoint or an export.
        self._count_non_finite = divergence.non_finite_counter(
            [*self.model.variables, *self.optimizer.variables]
        )

    def _input_info(self, info, skip_global_batches: int = 0):
        return dataclasses.replace(
            info, seed=self.config.train.seed, skip_global_batches=skip_global_batches
        )

    def evaluate(self) -> tuple[dict, np.ndarray, np.ndarray] | None:
        """Exact metrics over the task's eval set; None when the task has none."""
        if self._has_eval_set is None:  # Asked once: building a file dataset reads files.
            info = self.backend.input_info(self.config.train.global_batch_size)
            self._has_eval_set = self.task.eval_dataset(self._input_info(info)) is not None
        if not self._has_eval_set:
            return None
        dataset = self.backend.distribute_dataset(
            lambda info: self.task.eval_dataset(self._input_info(info)),
            self.config.train.global_batch_size,
        )
        totals = np.zeros(self.step.eval_vector_size)
        for batch in dataset:
            totals += self.step.eval_step(batch).numpy()
        positives, negatives = totals[:-2].reshape(2, self.task.num_outputs, -1)
        loss_sum, count = totals[-2:]
        metrics = metrics_lib.summarize(positives, negatives)
        metrics["loss"] = loss_sum / max(count, 1.0)
        metrics["num_examples"] = count
        return metrics, positives, negatives

    def _on_sigterm(self, signum, frame):
        logging.warning("SIGTERM: saving a checkpoint at the end of this loop, then exiting")
        self._stop_requested = True

    def _save(self, step: int, losses: list[float], eval_metrics: dict | None) -> None:
        count = float(self._count_non_finite())
        if resume.any_worker(self.backend, count > 0):
            self._diverged(
                NonFiniteWeightsError,
                f"{count:.0f} weights are not finite after step {step}",
                losses,
            )
        self.summaries.flush()  # Everything up to `step` is on disk before ckpt-`step`.
        path = self.checkpoints.save(step, losses, eval_metrics)
        if path:
            logging.info("saved checkpoint %s", path)

    def _diverged(self, error_class, what: str, losses_after_last_save: list[float]):
        what += "; stopped without checkpointing it."
        if self.backend.is_chief:
            what += " " + self.checkpoints.after_divergence(losses_after_last_save)
        self.summaries.flush()
        raise error_class(what)

    # --- the loop ------------------------------------------------------------------------
    def train(self) -> dict:
        train = self.config.train
        finished = resume.finished_summary(self.backend, self.workdir, train.steps)
        if finished is not None:
            return finished
        previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            return self._train(train)
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            self.profiler.stop()
            self.summaries.close()

    def _train(self, train) -> dict:
        self.task.prepare(self.backend)
        step = resumed_from = resume.restore(
            self.backend, self.checkpoints, self.model.variables + self.optimizer.variables
        )
        history = self.checkpoints.history(step) if self.backend.is_chief else []
        step_losses = [loss for record in history for loss in record.losses]
        eval_metrics = history[-1].eval if history and history[-1].step == step else None
        self.summaries.open(resumed_step=step)
        if step == 0:
            reporting.write_run_info(self.summaries, self.config, self.backend, self.task)
            self.summaries.flush()
        dataset = self.backend.distribute_dataset(
            lambda info: self.task.train_dataset(self._input_info(info, step)),
            train.global_batch_size,
        )
        iterator = iter(dataset)
        unsaved: list[float] = []  # Losses of the steps after the last checkpoint.
        progress = reporting.Progress(self.summaries, self.backend, train, start_step=step)
        while step < train.steps:
            num_steps = _steps_in_next_call(step, train, self.profiler.boundaries(step))
            self.profiler.before_call(step)
            loop_start = time.perf_counter()
            losses_now, norm = self.step.train_loop(iterator, tf.constant(num_steps))
            losses_now = [float(v) for v in losses_now.numpy()]
            self.profiler.after_call(step + num_steps)
            finite = np.isfinite(losses_now)
            if not finite.all():
                bad = int(np.argmin(finite))
                self._diverged(
                    NonFiniteLossError,
                    f"training loss is {losses_now[bad]} at step {step + bad + 1}",
                    unsaved + losses_now[: bad + 1],
                )
            step += num_steps
            unsaved += losses_now
            progress.report(
                step,
                losses_now,
                float(norm),
                time.perf_counter() - loop_start,
                float(self.optimizer.learning_rate),
            )
            if step == train.steps or (train.eval_every and step % train.eval_every == 0):
                eval_metrics = self._evaluate_and_write(step)
            else:
                eval_metrics = None
            stop = resume.any_worker(self.backend, self._stop_requested)
            if stop or step % train.checkpoint_every == 0 or step == train.steps:
                self._save(step, unsaved, eval_metrics)
                step_losses += unsaved
                unsaved = []
            if stop and step < train.steps:
                summary = reporting.run_summary(
                    self.config, self.backend, step, step_losses, resumed_from, {}, preempted=True
                )
                if self.backend.is_chief:
                    reporting.write_summary(self.workdir, summary)
                return summary
        if eval_metrics is None:  # Restored at the end from a checkpoint without eval.
            eval_metrics = self._evaluate_and_write(step)
        if resume.any_worker(self.backend, float(self._count_non_finite()) > 0):
            raise NonFiniteWeightsError(f"weights are not finite at step {step}; not exported")
        summary = reporting.run_summary(
            self.config,
            self.backend,
            step,
            step_losses,
            resumed_from,
            eval_metrics,
            preempted=False,
        )
        if self.backend.is_chief:
            reporting.export(self.model, self.workdir)
            reporting.write_summary(self.workdir, summary)
        else:
            self.checkpoints.remove_scratch()
        return summary

    def _evaluate_and_write(self, step: int) -> dict:
        evaluation = self.evaluate()
        if evaluation is None:
            return {}
        metrics, positives, negatives = evaluation
        reporting.write_evaluation(
            self.summaries, metrics, positives, negatives, step, log=self.backend.is_chief
        )
        return metrics


def _steps_in_next_call(step: int, train, extra_boundaries=()) -> int:
    """Steps of the next `tf.function` call: at most `steps_per_loop`, and ending on the
    next checkpoint or evaluation step (and a profiled range's ends), so that those
    happen where the config says."""
    boundaries = [train.steps, step + train.steps_per_loop, *extra_boundaries]
    for every in (train.checkpoint_every, train.eval_every):
        if every:
            boundaries.append((step // every + 1) * every)
    return min(boundaries) - step
