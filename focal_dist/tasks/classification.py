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
from focal_dist.data import images, pipeline, sources
from focal_dist.data.synthetic import SyntheticTask, synthetic_dataset
from focal_dist.distribute import Backend, InputInfo
from focal_dist.tasks.base import Task, TaskReport


def _schedule(loss) -> str | None:
    return None if loss.gamma_schedule in ("", "none") else loss.gamma_schedule


def _focal(task, labels, logits, *, focal=True):
    loss = task.config.loss
    options = (
        {"gamma_schedule": _schedule(loss), "poly_epsilon": loss.poly_epsilon} if focal else {}
    )
    gamma = loss.gamma if focal else 0.0
    if task.name == "multiclass":
        return losses.sparse_categorical_focal_crossentropy(
            labels,
            logits,
            gamma=gamma,
            alpha=loss.alpha if focal else 1.0,
            from_logits=True,
            class_weight=task.class_weight,
            **options,
        )
    auto_alpha = loss.alpha == "auto"
    return losses.binary_focal_crossentropy(
        labels,
        logits,
        gamma=gamma,
        alpha=task.alpha if auto_alpha else loss.alpha,
        # alpha = "auto" (each output's negative share) is meant to be applied.
        apply_class_balancing=focal and (loss.apply_class_balancing or auto_alpha),
        from_logits=True,
        label_smoothing=loss.label_smoothing,
        class_weight=task.class_weight,
        **options,
    )


def _cross_entropy(task, labels, logits):
    # Cross-entropy is focal loss with gamma = 0 and no alpha balancing.
    return _focal(task, labels, logits, focal=False)


def _asymmetric(task, labels, logits):
    loss = task.config.loss
    return losses.asymmetric_loss(
        labels,
        logits,
        gamma_pos=loss.gamma_pos,
        gamma_neg=loss.gamma_neg,
        clip=loss.clip,
        from_logits=True,
    )


def _logit_adjusted(task, labels, logits):
    # The prior is the all-reduced histogram's (prepare): a shard's would differ.
    histogram, tau = task.histogram, task.config.loss.tau
    if task.name == "multiclass":
        log_prior = losses.log_prior_from_counts(histogram.counts)
        return losses.logit_adjusted_crossentropy(labels, logits, log_prior=log_prior, tau=tau)
    rate = histogram.positives / max(histogram.num_examples, 1)
    return losses.logit_adjusted_binary_crossentropy(labels, logits, positive_rate=rate, tau=tau)


# loss.name -> (task, labels, logits) -> per-example losses [B]. bce and asl are for
# binary and multi-label tasks, ce for multiclass (config_check says which fits which).
LOSSES = {
    "focal": _focal,
    "bce": _cross_entropy,
    "ce": _cross_entropy,
    "asl": _asymmetric,
    "logit_adjusted": _logit_adjusted,
}
# Losses that need the label histogram whatever loss.class_weights says.
NEEDS_HISTOGRAM = ("logit_adjusted",)


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
        self.alpha = None  # loss.alpha = "auto": set from the histogram in prepare
        data = config.data
        self._images = None
        if data.source in images.SOURCES:
            if not data.path:
                raise ValueError(f"data.path is required for data.source={data.source!r}")
            self._synthetic = None
            self._images = self._image_source(data.path)
            self._eval_images = self._images
            if data.eval_path and data.eval_path != data.path:
                self._eval_images = self._image_source(data.eval_path)
                train_names, eval_names = self._images.class_names, self._eval_images.class_names
                if train_names != eval_names:
                    raise ValueError(
                        f"data.eval_path {data.eval_path!r} has classes {eval_names}; "
                        f"data.path {data.path!r} has {train_names}"
                    )
        elif data.source == "synthetic":
            self._synthetic = SyntheticTask(
                task=task,
                num_features=data.num_features,
                num_classes=self.num_outputs,
                positive_rate=data.synthetic.positive_rate,
                label_noise=data.synthetic.label_noise,
                hard_fraction=data.synthetic.hard_fraction,
                seed=data.synthetic.seed,
            )
        elif data.source in sources.SOURCES:
            if not data.path:
                raise ValueError(f"data.path is required for data.source={data.source!r}")
            self._synthetic = None
        else:
            known = ", ".join(("synthetic", *sources.SOURCES, *images.SOURCES))
            raise ValueError(f"data.source must be one of {known}; got {data.source!r}")

    def _image_source(self, path: str) -> images.ImageSource:
        return images.from_config(
            self.config.data, path=path, label_mode=self.label_mode, num_classes=self.num_outputs
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's features without the batch axis: (H, W, C) images or (F,)."""
        if self._images is not None:
            return self._images.options.input_shape
        data = self.config.data
        if data.source in sources.SOURCES:
            # data.num_features 0 means "read it from the files"; others must match.
            return (
                sources.resolve_num_features(
                    data.source,
                    data.path,
                    data.num_features,
                    label_column=data.label_column,
                    feature_column=data.feature_column,
                ),
            )
        return (data.num_features,)

    # --- data -------------------------------------------------------------------------
    def _labels_for_task(self, features, labels):
        if self.name == "binary":
            labels = tf.reshape(tf.cast(labels, tf.float32), [-1, 1])
        elif self.name == "multi_label":
            labels = tf.cast(labels, tf.float32)
        else:
            labels = tf.cast(labels, tf.int64)
        return tf.cast(features, tf.float32), labels

    def _file_examples(self, path: str, info: InputInfo) -> tf.data.Dataset:
        data = self.config.data
        batches = sources.make_dataset(
            data.source,
            path,
            info,
            label_column=data.label_column,
            feature_column=data.feature_column,
            batch_size=4096,
            label_mode=self.label_mode,
            num_classes=self.num_outputs,
        )
        return batches.unbatch()

    def train_dataset(self, info: InputInfo) -> tf.data.Dataset:
        config = self.config
        skip_global_batches = info.skip_global_batches
        if self._synthetic is not None:
            # Held in memory (as `cache()` held it before): each step is a slice of it.
            num_train = config.data.synthetic.num_train
            return pipeline.split_in_memory(
                self._synthetic_whole(num_train).cache(),
                num_train,
                info,
                global_batch_size=info.global_batch_size,
                shuffle=config.data.shuffle_buffer > 0,
                seed=info.seed,
                skip_global_batches=skip_global_batches,
                finish=self._labels_for_task,
            )
        if self._images is not None:
            return self._images.train_batches(
                info,
                shuffle_buffer=config.data.shuffle_buffer,
                seed=info.seed,
                skip_global_batches=skip_global_batches,
                finish=self._labels_for_task,
            )
        # Files: each pipeline reads its own files or records (no N-fold I/O); resuming
        # skips this pipeline's share of the batches already seen.
        return pipeline.shard_then_batch(
            self._file_examples(config.data.path, info),
            info,
            shuffle_buffer=config.data.shuffle_buffer,
            seed=info.seed,
            skip_batches=skip_global_batches * info.replicas_per_pipeline,
            finish=self._labels_for_task,
        )

    def _synthetic_whole(self, num_examples: int, offset: int = 0) -> tf.data.Dataset:
        """The synthetic examples offset .. offset + num_examples - 1 as one batch."""
        return synthetic_dataset(self._synthetic, num_examples, offset=offset).batch(num_examples)

    def eval_dataset(self, info: InputInfo) -> tf.data.Dataset:
        config = self.config
        if self._synthetic is not None:
            num_eval = config.data.synthetic.num_eval
            return pipeline.split_in_memory(
                self._synthetic_whole(num_eval, offset=config.data.synthetic.num_train),
                num_eval,
                info,
                global_batch_size=info.global_batch_size,
                repeat=False,
                finish=self._labels_for_task,
            )
        if self._images is not None:
            examples = self._eval_images.eval_examples(InputInfo(0, 1, info.per_replica_batch_size))
        else:
            path = config.data.eval_path or config.data.path
            # Every worker reads the whole eval set and keeps its slices of each global
            # batch: each example counted once, the same number of steps everywhere.
            examples = self._file_examples(path, InputInfo(0, 1, info.per_replica_batch_size))
        return pipeline.split_global_batches(
            examples,
            info,
            global_batch_size=info.global_batch_size,
            repeat=False,
            finish=self._labels_for_task,
        )

    def histogram_dataset(self, info: InputInfo) -> tf.data.Dataset:
        """The training labels, this pipeline's share, for the class-weight histogram."""
        if self._synthetic is not None:
            n = self.config.data.synthetic.num_train
            ids = tf.data.Dataset.range(n).shard(info.num_pipelines, info.pipeline_id)
            return ids.batch(4096).map(lambda i: self._synthetic.examples(i)[1])
        if self._images is not None:
            return self._images.labels(info, batch_size=4096)
        return sources.make_dataset(
            self.config.data.source,
            self.config.data.path,
            info,
            label_column=self.config.data.label_column,
            labels_only=True,
            # The label pass before training also checks every feature value.
            check_features=True,
            batch_size=4096,
            label_mode=self.label_mode,
            num_classes=self.num_outputs,
        )

    # --- class weights ----------------------------------------------------------------
    def prepare(self, backend: Backend) -> None:
        """Counts the training labels over all workers and sets the loss's class weights.

        Tabular files are read once here even without class weights: the same pass
        checks every feature and label value, so bad data stops the run before any
        checkpoint is written.
        """
        loss = self.config.loss
        scheme = loss.class_weights
        tabular_files = self._synthetic is None and self._images is None
        needed = (
            scheme != "none"
            or loss.alpha == "auto"
            or loss.name in NEEDS_HISTOGRAM
            or tabular_files
        )
        if not needed:
            return
        scheme = "balanced" if scheme == "auto" else scheme
        if scheme != "none" and scheme not in class_weights_lib.SCHEMES:
            raise ValueError(
                f"loss.class_weights must be none, auto or one of "
                f"{', '.join(class_weights_lib.SCHEMES)}; got {loss.class_weights!r}"
            )
        self.histogram = class_weights_lib.label_histogram(
            self.histogram_dataset,
            num_classes=self.num_outputs,
            label_mode=self.label_mode,
            backend=backend,
            label_fn=lambda labels: labels,
        )
        if loss.alpha == "auto":
            self.alpha = class_weights_lib.focal_alpha(self.histogram, per_output=True, min_count=1)
            logging.info("focal alpha per output (negative share) %s", np.round(self.alpha, 4))
        if scheme == "none":
            logging.info("label histogram %s (no class weights)", self.histogram.counts.tolist())
            return
        self.class_weight = class_weights_lib.class_weights(
            self.histogram, scheme, beta=loss.beta, min_count=1
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
        """`LOSSES[loss.name]` with the class weights counted in `prepare`."""
        return LOSSES[self.config.loss.name](self, labels, logits)

    def probabilities_and_targets(self, labels, logits):
        """[B, C] probabilities and 0/1 targets for the metrics (one-vs-rest if multiclass)."""
        if self.name == "multiclass":
            return tf.nn.softmax(logits), tf.one_hot(labels, self.num_outputs)
        return tf.sigmoid(logits), labels
