"""The controller: when to train, evaluate, checkpoint and write summaries.

It never knows the model, and the task never knows the backend; the step math (the
forward and backward pass and the one collective per step) is in `training/step.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from focal_dist.distribute import Backend
from focal_dist.training import metrics as metrics_lib
from focal_dist.training.model import build_optimizer
from focal_dist.training.step import StepOptions, TrainStep
from focal_dist.training.summaries import SummaryWriter, markdown_table


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; nothing was checkpointed after it."""


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
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self._chief_checkpoints = os.path.join(workdir, "checkpoints")
        self._checkpoint_manager = None
        if backend.is_chief or backend.checkpoint_on_every_worker:
            # Non-chief MultiWorkerMirrored workers must save too; they write to a
            # directory of their own that is removed at the end.
            directory = (
                self._chief_checkpoints
                if backend.is_chief
                else os.path.join(workdir, f".worker_{backend.worker_index}", "checkpoints")
            )
            self._checkpoint_manager = tf.train.CheckpointManager(
                self.checkpoint, directory, max_to_keep=train.keep_checkpoints
            )
        self.summaries = SummaryWriter(os.path.join(workdir, "tensorboard"), backend.is_chief)

    # --- evaluation -----------------------------------------------------------------
    def evaluate(self) -> tuple[dict, np.ndarray, np.ndarray]:
        dataset = self.backend.distribute_dataset(
            self.task.eval_dataset, self.config.train.global_batch_size
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

    # --- checkpoints ------------------------------------------------------------------
    def _restore(self) -> int:
        latest = tf.train.latest_checkpoint(self._chief_checkpoints)
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            logging.info(
                "resumed from %s at step %d", latest, int(self.optimizer.iterations.numpy())
            )
        else:
            # Horovod: every rank starts from rank 0's initial values.
            self.backend.broadcast_variables(self.model.variables + self.optimizer.variables)
        return int(self.optimizer.iterations.numpy())

    def _save(self, step: int) -> None:
        if self._checkpoint_manager is not None:
            path = self._checkpoint_manager.save(checkpoint_number=step)
            if self.backend.is_chief:
                logging.info("saved checkpoint %s", path)

    def _on_sigterm(self, signum, frame):
        logging.warning("SIGTERM: saving a checkpoint at the end of this loop, then exiting")
        self._stop_requested = True

    def _stop_agreed(self) -> bool:
        # Every worker must leave the loop at the same step, or collectives would hang.
        flag = tf.constant([1.0 if self._stop_requested else 0.0])
        return bool(self.backend.sum_across_workers(flag).numpy()[0] > 0)

    # --- the controller ---------------------------------------------------------------
    def train(self) -> dict:
        config = self.config
        train = config.train
        self.task.fit_class_weights(self.backend)
        step = self._restore()
        self._log_run_info()
        previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        dataset = self.backend.distribute_dataset(
            lambda info: self.task.train_dataset(info, skip_global_batches=step),
            train.global_batch_size,
        )
        iterator = iter(dataset)
        step_losses: list[float] = []
        eval_metrics: dict = {}
        start_step, start_time = step, time.perf_counter()
        preempted = False
        try:
            while step < train.steps:
                num_steps = min(train.steps_per_loop, train.steps - step)
                loop_start = time.perf_counter()
                losses_now, norm = self.step.train_loop(iterator, tf.constant(num_steps))
                losses_now = losses_now.numpy()
                step += num_steps
                if not np.all(np.isfinite(losses_now)):
                    bad = step - num_steps + int(np.argmin(np.isfinite(losses_now)))
                    raise NonFiniteLossError(
                        f"training loss is {losses_now[~np.isfinite(losses_now)][0]} at step "
                        f"{bad + 1}; stopped without checkpointing it (last checkpoint kept in "
                        f"{self._chief_checkpoints})"
                    )
                step_losses.extend(float(v) for v in losses_now)
                seconds = time.perf_counter() - loop_start
                self._log_progress(step, losses_now, float(norm), seconds, start_step, start_time)
                if train.eval_every and step % train.eval_every == 0 and step < train.steps:
                    eval_metrics = self._evaluate_and_write(step)
                if step % train.checkpoint_every == 0 or step == train.steps:
                    self._save(step)
                if self._stop_agreed():
                    self._save(step)
                    preempted = True
                    break
            if not preempted:
                eval_metrics = self._evaluate_and_write(step)
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            self.summaries.flush()
        summary = {
            "step": step,
            "train_loss": step_losses[-1] if step_losses else None,
            "train_losses": step_losses,
            "first_step": start_step + 1,
            "preempted": preempted,
            "eval": eval_metrics,
            "num_replicas": self.backend.num_replicas_in_sync,
            "distribution": self.backend.name,
            "config": json.loads(config.to_json()),
        }
        if not preempted:
            self._export()
        if self.backend.is_chief:
            path = os.path.join(self.workdir, "summary.json")
            with open(path + ".tmp", "w") as handle:
                json.dump(summary, handle, indent=2)
            os.replace(path + ".tmp", path)
        elif self._checkpoint_manager is not None:
            shutil.rmtree(
                os.path.join(self.workdir, f".worker_{self.backend.worker_index}"),
                ignore_errors=True,
            )
        self.summaries.close()
        return summary

    def _export(self) -> None:
        if self.backend.is_chief:
            os.makedirs(os.path.join(self.workdir, "export"), exist_ok=True)
            path = os.path.join(self.workdir, "export", "model.keras")
            self.model.save(path)
            logging.info("exported %s", path)

    def _evaluate_and_write(self, step: int) -> dict:
        metrics, positives, negatives = self.evaluate()
        self.summaries.scalars(metrics, step, prefix="eval/")
        self.summaries.evaluation(positives, negatives, step, tag="eval")
        if self.backend.is_chief:
            logging.info(
                "step %d eval: loss %.5f pr_auc %.4f roc_auc %.4f f1 %.4f",
                step,
                metrics["loss"],
                metrics["pr_auc"],
                metrics["roc_auc"],
                metrics["f1"],
            )
        return metrics

    def _log_progress(self, step, losses_now, norm, seconds, start_step, start_time):
        train = self.config.train
        examples_per_second = len(losses_now) * train.global_batch_size / max(seconds, 1e-9)
        learning_rate = float(self.optimizer.learning_rate)
        self.summaries.scalars(
            {
                "loss": float(np.mean(losses_now)),
                "learning_rate": learning_rate,
                "examples_per_second": examples_per_second,
                "global_batch_size": train.global_batch_size,
                "num_replicas": self.backend.num_replicas_in_sync,
                "gradient_norm": norm,
            },
            step,
            prefix="train/",
        )
        if self.backend.is_chief and (
            step % train.log_every < len(losses_now) or step == train.steps
        ):
            elapsed = time.perf_counter() - start_time
            remaining = elapsed / max(step - start_step, 1) * (train.steps - step)
            logging.info(
                "step %d/%d  loss %.5f  lr %.3g  grad_norm %.3g  %.0f examples/s  ETA %.0fs",
                step,
                train.steps,
                float(losses_now[-1]),
                learning_rate,
                norm,
                examples_per_second,
                remaining,
            )

    def _log_run_info(self) -> None:
        if not self.backend.is_chief:
            return
        from ml_collections import config_dict

        flat = {}

        def flatten(prefix, node):
            for key, value in node.items():
                if isinstance(value, config_dict.ConfigDict):
                    flatten(f"{prefix}{key}.", value)
                elif isinstance(value, (bool, int, float, str)):
                    flat[f"{prefix}{key}"] = value
                else:
                    flat[f"{prefix}{key}"] = str(value)

        flatten("", self.config)
        flat["distribution"] = self.backend.name
        flat["num_replicas"] = self.backend.num_replicas_in_sync
        self.summaries.hparams(flat)
        histogram = self.task.histogram
        if histogram is not None:
            weights = np.asarray(self.task.class_weight)
            if histogram.label_mode in ("binary", "multi_label"):
                rows = [
                    [
                        c,
                        int(p),
                        int(histogram.num_examples - p),
                        f"{weights[0, c]:.4f}",
                        f"{weights[1, c]:.4f}",
                    ]
                    for c, p in enumerate(histogram.positives)
                ]
                header = ["output", "positives", "negatives", "w_neg", "w_pos"]
            else:
                rows = [[c, int(n), f"{weights[c]:.4f}"] for c, n in enumerate(histogram.counts)]
                header = ["class", "count", "weight"]
            self.summaries.text("data/label_histogram", markdown_table(header, rows))
