"""The trainer: builds a run's collaborators once and hands them to the controller.

It never knows the model, and the task never knows the backend; the step math is in
`training/step.py`, the loop in `training/controller.py`, what happens around it in
`training/actions.py`, checkpoints in `training/checkpoints.py`.

A run is a sequence of processes that ends when one of them finishes the steps:
- start: the config is written to the work dir (`config.json`, chief); the chief picks
  the newest usable checkpoint S and every worker restores that same one (the choice is
  agreed through a collective, not read by each worker);
- SIGTERM: the loop stops at the end of its call, every worker saves step S, the chief
  writes summary.json with `preempted` (not `complete`) and the CLI exits 143 so that
  job controllers retry;
- a non-finite loss or weight raises without saving; the checkpoints written after the
  divergence began are moved aside (`checkpoints.diverged_checkpoints`);
- an action that raises (an evaluation, a summary) is preceded by a checkpoint save;
- summaries of steps <= S are flushed before ckpt-S is saved, and a restart at S marks
  step S + 1 for TensorBoard, so the logs read as one run;
- a run whose summary.json says it finished train.steps is left untouched.
"""

from __future__ import annotations

import dataclasses
import signal

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from focal_dist.distribute import Backend, InputInfo
from focal_dist.training import actions, allreduce, divergence, reporting, resume, run_record
from focal_dist.training.checkpoints import CheckpointStore
from focal_dist.training.controller import (
    Controller,
    NonFiniteLossError,
    NonFiniteWeightsError,
)
from focal_dist.training.decide import Decide
from focal_dist.training.optimizers import build_optimizer
from focal_dist.training.profiling import StepProfiler
from focal_dist.training.step import StepOptions, TrainStep
from focal_dist.training.summaries import SummaryWriter
from focal_dist.workdir import WorkDir

__all__ = ["NonFiniteLossError", "NonFiniteWeightsError", "Trainer"]


class Trainer:
    """Trains `task` under `backend` as `config` says; `train()` returns the summary."""

    def __init__(
        self,
        *,
        config,
        task,
        backend: Backend,
        workdir: str,
        accepted_changes=None,
        restart: bool = False,
    ):
        self.config = config
        self.restart = restart
        self.accepted_changes = dict(accepted_changes or {})
        self.segments = run_record.Segments(workdir, backend.is_chief)
        self.task = task
        self.backend = backend
        self.workdir = workdir
        train = config.train
        per_replica = backend.input_info(train.global_batch_size).per_replica_batch_size
        self._stop_requested = False
        self._has_split: dict[str, bool] = {}
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
        terms = task.loss_terms()
        self.step = TrainStep(
            model=self.model,
            optimizer=self.optimizer,
            backend=backend,
            loss_terms=terms,
            evaluation=task.evaluation(),
            options=StepOptions(
                per_replica_batch_size=per_replica,
                clip_global_norm=config.optimizer.clip_global_norm,
                jit_compile=train.jit_compile,
                mixed_precision=train.mixed_precision,
                allreduce=allreduce.mode_for(train, terms, self.model, backend),
                bucket_bytes=int(train.allreduce_bucket_mb * 2**20),
                compression=train.allreduce_compression,
            ),
        )
        self.checkpoints = CheckpointStore.for_backend(
            tf.train.Checkpoint(model=self.model, optimizer=self.optimizer),
            workdir,
            backend,
            keep=train.keep_checkpoints,
        )
        self.summaries = SummaryWriter(WorkDir(workdir).tensorboard, backend.is_chief)
        self.profiler = StepProfiler(train.profile_steps, self.summaries.logdir, backend.is_chief)
        # One reduction over every variable: cheap next to a checkpoint or an export.
        self._count_non_finite = divergence.non_finite_counter(
            [*self.model.variables, *self.optimizer.variables]
        )

    def _input_info(self, info, skip_global_batches: int = 0):
        return dataclasses.replace(
            info, seed=self.config.train.seed, skip_global_batches=skip_global_batches
        )

    def _split(self, split: str):
        """The task's distributed batches of a held-out split, or None without one."""
        dataset_fn = {"eval": self.task.eval_dataset, "calibration": self.task.calibration_dataset}
        if split not in self._has_split:  # Asked once: building a file dataset reads files.
            info = self.backend.input_info(self.config.train.global_batch_size)
            self._has_split[split] = dataset_fn[split](self._input_info(info)) is not None
        if not self._has_split[split]:
            return None
        return self.backend.distribute_dataset(
            lambda info: dataset_fn[split](self._input_info(info)),
            self.config.train.global_batch_size,
        )

    def evaluate(self) -> tuple[dict, np.ndarray] | None:
        """Exact metrics over the task's eval set and the summed statistics; None when
        the task has none."""
        dataset = self._split("eval")
        return None if dataset is None else self.step.held_out.evaluate(dataset)

    def score(self, split: str) -> tuple[np.ndarray, np.ndarray] | None:
        """This worker's (logits, labels) of "eval" or "calibration"; None without it."""
        dataset = self._split(split)
        return None if dataset is None else self.step.held_out.score(dataset)

    def pictures(self) -> np.ndarray | None:
        """The evaluation's pictures of the first `num_images` eval examples (chief only):
        the model is called outside the step, so no collective runs."""
        count = self.step.evaluation.num_images
        if not count or not self.backend.is_chief:
            return None
        info = InputInfo(0, 1, count, global_batch_size=count, seed=self.config.train.seed)
        dataset = self.task.eval_dataset(info)
        if dataset is None:
            return None
        features, labels = next(iter(dataset))
        logits = tf.cast(self.model(features, training=False), tf.float32)
        return self.step.evaluation.pictures(features.numpy(), labels.numpy(), logits.numpy())

    def _on_sigterm(self, signum, frame):
        logging.warning("SIGTERM: saving a checkpoint at the end of this loop, then exiting")
        self._stop_requested = True

    def train(self) -> dict:
        finished = resume.finished_summary(self.backend, self.workdir, self.config.train.steps)
        if finished is not None:
            return finished
        previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            return self._train()
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            self.profiler.stop()
            self.summaries.close()

    def _train(self) -> dict:
        """Counts, restores, opens the segment; then the actions and the controller's run."""
        backend = self.backend
        self.task.prepare(backend)
        step = resume.restore(
            backend,
            self.checkpoints,
            self.model.variables + self.optimizer.variables,
            restart=self.restart,
        )
        segment = _Segment(resumed_from=step, trained_step=step)
        self.segments.start(step, self.accepted_changes, backend)
        try:
            history = self._open_run(step)
            segment.checkpoint = actions.Checkpoint(
                store=self.checkpoints,
                summaries=self.summaries,
                backend=backend,
                count_non_finite=self._count_non_finite,
                every=self.config.train.checkpoint_every,
                history=history,
            )
            controller = Controller(
                train_call=self._train_call(step, segment),
                actions=self._actions(segment.checkpoint),
                steps=self.config.train.steps,
                steps_per_loop=self.config.train.steps_per_loop,
                stop_requested=lambda: backend.any_worker(self._stop_requested),
                on_non_finite=segment.checkpoint.non_finite_loss,
            )
            restored_eval = history[-1].eval if history and history[-1].step == step else None
            result = controller.run(step, eval_metrics=restored_eval)
            return self._finish(result, segment)
        except BaseException as error:
            self.segments.end(segment.trained_step, segment.saved_step, type(error).__name__)
            raise

    def _open_run(self, step: int) -> list:
        """config.json, the TensorBoard run opened at `step`; returns the checkpoint history."""
        backend = self.backend
        if backend.is_chief:
            reporting.write_config(self.workdir, self.config)
        history = self.checkpoints.history(step) if backend.is_chief else []
        self.summaries.open(resumed_step=step)
        if step == 0:
            reporting.write_run_info(self.summaries, self.config, backend, self.task)
        reporting.write_segments(self.summaries, self.segments.read(), step)
        self.summaries.flush()
        return history

    def _train_call(self, step: int, segment: _Segment):
        """`train_call(num_steps)` of the controller, reading the training data from `step`."""
        iterator = iter(
            self.backend.distribute_dataset(
                lambda info: self.task.train_dataset(self._input_info(info, step)),
                self.config.train.global_batch_size,
            )
        )

        def train_call(num_steps):
            losses, norm = self.step.train_loop(iterator, tf.constant(num_steps))
            segment.trained_step += num_steps
            return [float(v) for v in losses.numpy()], float(norm)

        return train_call

    def _actions(self, checkpoint) -> list:
        """Around each call, in order: progress, profile, evaluate, checkpoint; at the end
        decide (calibration, threshold), then export what it decided."""
        backend = self.backend
        return [
            actions.Progress(
                summaries=self.summaries,
                backend=backend,
                train=self.config.train,
                learning_rate=lambda: float(self.optimizer.learning_rate),
            ),
            actions.Profile(self.profiler),
            actions.Evaluate(
                evaluate=self.evaluate,
                evaluation=self.step.evaluation,
                summaries=self.summaries,
                every=self.config.train.eval_every,
                log=backend.is_chief,
                pictures=self.pictures,
            ),
            checkpoint,
            Decide(
                score=self.score,
                task=self.task,
                config=self.config,
                backend=backend,
                summaries=self.summaries,
                per_example=_per_example_outputs(self.model),
            ),
            actions.Export(
                model=self.model,
                workdir=self.workdir,
                backend=backend,
                count_non_finite=self._count_non_finite,
                task=self.task,
                config=self.config,
            ),
        ]

    def _finish(self, result, segment: _Segment) -> dict:
        """Ends the segment and writes summary.json (chief); returns the summary."""
        preempted = not result.last
        checkpoint = segment.checkpoint
        self.segments.end(
            result.step, checkpoint.saved_step, "sigterm" if preempted else "finished"
        )
        summary = reporting.run_summary(
            self.config,
            self.backend,
            result.step,
            checkpoint.step_losses,
            segment.resumed_from,
            {} if preempted else result.eval_metrics,
            preempted=preempted,
        )
        summary.update(self.task.summary_sections())
        summary.update(result.extras)
        summary["segments"] = self.segments.read()
        if self.backend.is_chief:
            reporting.write_summary(self.workdir, summary)
        return summary


@dataclasses.dataclass
class _Segment:
    """How far this process's part of the run got: what an error ending it reports."""

    resumed_from: int
    trained_step: int
    checkpoint: actions.Checkpoint | None = None

    @property
    def saved_step(self) -> int:
        return self.checkpoint.saved_step if self.checkpoint else self.resumed_from


def _per_example_outputs(model) -> bool:
    """True unless the model's logits are per element ([B, H, W, C]: segmentation)."""
    try:
        return len(model.output_shape) == 2
    except (AttributeError, ValueError, TypeError):  # a subclassed model never built
        return True
