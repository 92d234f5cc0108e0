"""What is trained: data, model and loss for an imbalanced classification task.

The task never knows how it is distributed: it builds datasets from an `InputInfo`
and a model and a per-example loss; the trainer does the rest.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import logging

from focal_dist import class_weights as class_weights_lib
from focal_dist import losses, models
from focal_dist.data import get_source
from focal_dist.distribute import Backend, InputInfo
from focal_dist.training.base_task import Task, TaskReport

LOSSES = ("focal", "bce", "ce")


class ClassificationTask(Task):
    """Binary, multi-label or multi-class classification from the config."""

    def __init__(self, config):
        self.config = config
        task = config.task.name
        if task not in ("binary", "multi_label", "multiclass"):
            raise ValueError(f"task.name must be binary, multi_label or multiclass; got {task!r}")
        if config.loss.name not in LOSSES:
            raise ValueError(
                f"loss.name must be one of {', '.join(LOSSES)}; got {config.loss.name!r}"
            )
        self.name = task
        self.num_outputs = 1 if task == "binary" else config.task.num_classes
        self.label_mode = {"binary": "binary", "multi_label": "multi_label"}.get(task, "sparse")
        self.class_weight = None
        self.histogram = None
        # The data set, whatever its kind (focal_dist/data/sources/).
        self.source = get_source(
            config.data, label_mode=self.label_mode, num_classes=self.num_outputs
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's features without the batch axis: (H, W, C) images or (F,)."""
        return self.source.input_shape

    # --- data -------------------------------------------------------------------------
    def train_dataset(self, info: InputInfo) -> tf.data.Dataset:
        return self.source.train_batches(info)

    def eval_dataset(self, info: InputInfo) -> tf.data.Dataset:
        return self.source.split_batches(info, "eval")

    def histogram_dataset(self, info: InputInfo) -> tf.data.Dataset:
        """The training labels, this pipeline's share, for the class-weight histogram."""
        return self.source.label_batches(info)

    # --- class weights ----------------------------------------------------------------
    def prepare(self, backend: Backend) -> None:
        """Counts the training labels over all workers and sets the loss's class weights.

        Tabular files are read once here even without class weights: the same pass
        checks every feature and label value, so bad data stops the run before any
        checkpoint is written.
        """
        scheme = self.config.loss.class_weights
        if scheme == "none" and not self.source.label_pass_checks_values:
            return
        scheme = "balanced" if scheme == "auto" else scheme
        if scheme != "none" and scheme not in class_weights_lib.SCHEMES:
            raise ValueError(
                f"loss.class_weights must be none, auto or one of "
                f"{', '.join(class_weights_lib.SCHEMES)}; got {self.config.loss.class_weights!r}"
            )
        self.histogram = class_weights_lib.label_histogram(
            self.histogram_dataset,
            num_classes=self.num_outputs,
            label_mode=self.label_mode,
            backend=backend,
            label_fn=lambda labels: labels,
        )
        if scheme == "none":
            logging.info("label histogram %s (no class weights)", self.histogram.counts.tolist())
            return
        self.class_weight = class_weights_lib.class_weights(
            self.histogram, scheme, beta=self.config.loss.beta, min_count=1
        )
        logging.info(
            "label histogram %s -> %s weights %s",
            self.histogram.counts.tolist(),
            scheme,
            np.round(self.class_weight, 4).tolist(),
        )

    def report(self) -> TaskReport | None:
        """The label histogram and the class weights fitted from it."""
        histogram = self.histogram
        if histogram is None:
            return None
        if self.class_weight is None:  # loss.class_weights = none: every weight is 1.
            shape = (2, self.num_outputs) if self.label_mode != "sparse" else (self.num_outputs,)
            weights = np.ones(shape)
        else:
            weights = np.asarray(self.class_weight)
        if histogram.label_mode in ("binary", "multi_label"):
            header = ["output", "positives", "negatives", "w_neg", "w_pos"]
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
        else:
            header = ["class", "count", "weight"]
            rows = [[c, int(n), f"{weights[c]:.4f}"] for c, n in enumerate(histogram.counts)]
        return TaskReport("data/label_histogram", header, rows)

    # --- model and loss ---------------------------------------------------------------
    def build_model(self):
        """`config.model.name` (mlp, cnn, resnet50, efficientnet_b0 or module:function)."""
        return models.build_model(
            self.config.model,
            num_outputs=self.num_outputs,
            input_shape=self.input_shape,
            seed=self.config.train.seed,
            l2=self.config.model.l2,
        )

    def per_example_loss(self, labels, logits):
        loss = self.config.loss
        focal = loss.name == "focal"
        gamma = loss.gamma if focal else 0.0
        if self.name == "multiclass":
            return losses.sparse_categorical_focal_crossentropy(
                labels,
                logits,
                gamma=gamma,
                alpha=loss.alpha if focal else 1.0,
                from_logits=True,
                class_weight=self.class_weight,
            )
        return losses.binary_focal_crossentropy(
            labels,
            logits,
            gamma=gamma,
            alpha=loss.alpha,
            apply_class_balancing=focal and loss.apply_class_balancing,
            from_logits=True,
            label_smoothing=loss.label_smoothing,
            class_weight=self.class_weight,
        )

    def probabilities_and_targets(self, labels, logits):
        """[B, C] probabilities and 0/1 targets for the metrics (one-vs-rest if multiclass)."""
        if self.name == "multiclass":
            return tf.nn.softmax(logits), tf.one_hot(labels, self.num_outputs)
        return tf.sigmoid(logits), labels
