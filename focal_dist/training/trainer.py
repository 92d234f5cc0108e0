"""The distributed training loop: train, evaluate, checkpoint, summarise.

One global step, on every backend (DESIGN.md, "one global mean"):

    m_r    = mean_{i in replica r} w_i l_i, n_r examples  # per replica, XLA-compilable
    [g, G] = all_reduce_sum([n_r grad m_r, n_r])          # SUM, one collective
    loss   = sum_r n_r m_r / G,  g = g / G
    clip g by its global norm, apply

(With regularisation losses G is all-reduced first and each replica differentiates
compute_global_loss(...) + reg / R, so that regularisation is not divided by G.)

The controller part (`train`) decides when to evaluate, checkpoint and write
summaries; it never knows the model, and the task never knows the backend.
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

from focal_dist import losses
from focal_dist.distribute import Backend
from focal_dist.training import metrics as metrics_lib
from focal_dist.training.model import build_optimizer
from focal_dist.training.summaries import SummaryWriter, markdown_table


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; nothing was checkpointed after it."""


def _disable_optimizer_all_reduce(optimizer) -> None:
    # Keras 3's TF optimizer SUM-all-reduces gradients again inside apply_gradients when
    # it runs in a replica context; the trainer has already summed them (once, before
    # clipping), so the optimizer's own all-reduce must be an identity.
    inner = getattr(optimizer, "inner_optimizer", None)
    for opt in (optimizer, inner):
        if opt is not None and hasattr(opt, "_all_reduce_sum_gradients"):
            opt._all_reduce_sum_gradients = lambda grads_and_vars: list(grads_and_vars)


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
        if backend.optimizer_sums_gradients:
            _disable_optimizer_all_reduce(self.optimizer)
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

    # --- the per-replica step -------------------------------------------------------
    def _forward_backward(self, features, labels, global_count):
        """(this replica's loss share, its gradients); no collective inside (XLA-safe).

        With `global_count` None (no regularisation losses), the loss is this replica's
        own mean of w_i l_i and the gradients are those of that mean: the caller scales
        both by the local count and divides by G once it has come back with the gradient
        all-reduce. (Differentiating the local sum directly would be the same math, but
        sums overflow float16 under mixed-precision loss scaling.)
        """
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(features, training=True), tf.float32)
            per_example = self.task.per_example_loss(labels, logits)
            if global_count is None:
                local_count = tf.cast(tf.size(per_example), per_example.dtype)
                loss = total = tf.math.divide_no_nan(tf.reduce_sum(per_example), local_count)
            else:
                loss = losses.compute_global_loss(per_example, global_batch_size=global_count)
                total = loss + losses.scale_regularization_loss(self.model.losses, self.backend)
            if self.config.train.mixed_precision:
                total = self.optimizer.scale_loss(total)
        return loss, tape.gradient(total, variables)

    def _replica_step(self, batch):
        features, labels = batch
        local_count = tf.cast(tf.shape(labels)[0], tf.float32)
        if self.model.losses:
            # Distribution: G, the all-reduced example count, is needed before the
            # forward pass, because regularisation must not be divided by it.
            global_count = self.backend.all_reduce_sum(local_count)
            loss, gradients = self._compiled_forward_backward(features, labels, global_count)
            # Distribution: gradients SUMMED over replicas, once.
            gradients = self.backend.aggregate_gradients(gradients)
        else:
            local_mean, gradients = self._compiled_forward_backward(features, labels, None)
            # Distribution: one SUM all-reduce carries the gradients and the example
            # count; grad (sum_i w_i l_i / G) = (sum over replicas of n_r grad mean_r) / G.
            *gradients, global_count = self.backend.aggregate_gradients(
                [*(g * local_count for g in gradients), local_count]
            )
            gradients = [tf.math.divide_no_nan(g, global_count) for g in gradients]
            loss = tf.math.divide_no_nan(local_mean * local_count, global_count)
        norm = tf.linalg.global_norm(gradients)
        clip = self.config.optimizer.clip_global_norm
        if clip:
            gradients, _ = tf.clip_by_global_norm(gradients, clip, use_norm=norm)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables, strict=True))
        return loss, norm

    def _build_functions(self):
        # XLA compiles the model and loss as their own function; without it they are
        # inlined in the step (a nested function call costs ~5% of a small step).
        self._compiled_forward_backward = (
            tf.function(self._forward_backward, jit_compile=True)
            if self.config.train.jit_compile
            else self._forward_backward
        )

        @tf.function
        def train_loop(iterator, num_steps):
            step_losses = tf.TensorArray(tf.float32, size=num_steps)
            norm = tf.constant(0.0)
            for i in tf.range(num_steps):
                per_replica_loss, per_replica_norm = self.backend.run(
                    self._replica_step, args=(next(iterator),)
                )
                # Distribution: the global loss is the SUM of the replicas' shares.
                step_losses = step_losses.write(i, self.backend.reduce_sum(per_replica_loss))
                norm = self.backend.local_results(per_replica_norm)[0]
            return step_losses.stack(), norm

        @tf.function
        def eval_step(batch):
            return self.backend.reduce_sum(self.backend.run(self._eval_replica, args=(batch,)))

        self._train_loop = train_loop
        self._eval_step = eval_step

    def _eval_replica(self, batch):
        features, labels = batch
        logits = tf.cast(self.model(features, training=False), tf.float32)
        per_example = self.task.per_example_loss(labels, logits)
        probabilities, targets = self.task.probabilities_and_targets(labels, logits)
        positives, negatives = metrics_lib.bucket_counts(probabilities, targets)
        count = tf.cast(tf.shape(labels)[0], tf.float32)
        # One flat vector, so one collective per eval step (several concurrent Horovod
        # all-reduces in one graph were seen to stall on 2 cores).
        return tf.concat(
            [
                tf.reshape(positives, [-1]),
                tf.reshape(negatives, [-1]),
                [tf.reduce_sum(per_example), count],
            ],
            axis=0,
        )

    # --- evaluation -----------------------------------------------------------------
    def evaluate(self) -> tuple[dict, np.ndarray, np.ndarray]:
        dataset = self.backend.distribute_dataset(
            self.task.eval_dataset, self.config.train.global_batch_size
        )
        totals = np.zeros(2 * self.task.num_outputs * metrics_lib.NUM_BUCKETS + 2)
        for batch in dataset:
            totals += self._eval_step(batch).numpy()
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
            logging.info("resumed from %s at step %d", latest, int(self.optimizer.iterations))
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
        self._build_functions()
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
                losses_now, norm = self._train_loop(iterator, tf.constant(num_steps))
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
