"""What is trained: an imbalanced binary, multi-label or multi-class classifier.

The task composes a data source (`focal_dist.data.sources`, by `data.source`), a model
(`focal_dist.models`, by `model.name`) and the loss `loss.*` means
(`loss_builder.build_loss`, from the counted labels); it never knows how it is
distributed: the trainer does the rest.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import logging

from focal_dist import class_weights as class_weights_lib
from focal_dist import models
from focal_dist.data import bad_files, get_source
from focal_dist.distribute import Backend, InputInfo
from focal_dist.tasks import class_weighting
from focal_dist.tasks.base import Task, TaskReport, bad_files_report
from focal_dist.tasks.loss_builder import NEEDS_HISTOGRAM, LabelCounts, build_loss, check_fits

LABEL_MODES = {"binary": "binary", "multi_label": "multi_label", "multiclass": "sparse"}


def config_skips(config) -> bool:
    return config.data.non_finite == "skip"


class ClassificationTask(Task):
    """Binary, multi-label or multi-class classification from the config."""

    def __init__(self, config):
        self.config = config
        task = config.task.name
        if task not in LABEL_MODES:
            raise ValueError(f"task.name must be one of {', '.join(LABEL_MODES)}; got {task!r}")
        check_fits(config.loss.name, task)
        self.name = task
        self.num_outputs = 1 if task == "binary" else config.task.num_classes
        self.label_mode = LABEL_MODES[task]
        # What `prepare` counted over all workers, as the loss uses it.
        self.counts = LabelCounts()
        self.skipped = None  # data.non_finite = "skip": the rows dropped, over all workers
        self.bad_files = None  # data.bad_files = "skip": the images left out, over all workers
        # The data set, whatever its kind (focal_dist/data/sources/).
        self.source = get_source(
            config.data, label_mode=self.label_mode, num_classes=self.num_outputs
        )
        # Files are listed (and their classes checked) now, before the run writes anything;
        # batch prediction builds the source alone and never lists the training files.
        self.source_classes = self.source.class_names

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's features without the batch axis: (H, W, C) images or (F,)."""
        return self.source.input_shape

    # --- data -------------------------------------------------------------------------
    def train_dataset(self, info: InputInfo) -> tf.data.Dataset:
        return self.source.train_batches(info)

    def eval_dataset(self, info: InputInfo) -> tf.data.Dataset | None:
        return self.source.split_batches(info, "eval")

    def calibration_dataset(self, info: InputInfo) -> tf.data.Dataset | None:
        return self.source.split_batches(info, "calibration")

    def serving_inputs(self) -> dict:
        return self.source.serving_inputs()

    @property
    def class_names(self) -> list[str] | None:
        return self.source.class_names

    @property
    def data_fields(self) -> tuple[str, ...]:
        return self.source.config_fields

    def histogram_dataset(self, info: InputInfo) -> tf.data.Dataset:
        """The training labels, this pipeline's share, for the class-weight histogram."""
        return self.source.label_batches(info)

    # --- class weights ----------------------------------------------------------------
    def prepare(self, backend: Backend) -> None:
        """Counts the training labels over all workers: class weights, alpha, the prior.

        File sources are read once here even when nothing needs the counts: the same
        pass checks every feature and label value, so bad data stops the run before any
        checkpoint is written. Image folders have every image decoded once first: one
        that cannot be stops the run, or is left out (`data.bad_files`).
        """
        loss = self.config.loss
        scheme = loss.class_weights
        needed = (
            scheme != "none"
            or loss.alpha == "auto"
            or loss.name in NEEDS_HISTOGRAM
            or self.source.label_pass_checks_values
        )
        info = InputInfo(backend.input_pipeline_id, backend.num_input_pipelines, 4096)
        _, self.bad_files = bad_files.check_source(
            self.source,
            info,
            mode=self.config.data.bad_files,
            sum_across_workers=backend.sum_across_workers,
        )
        if config_skips(self.config):
            local = self.source.skipped_rows(info, "train")
            self.skipped = local.summed(backend.sum_across_workers) if local else None
            if self.skipped is not None:
                logging.warning(
                    "data.non_finite = skip: %d training rows dropped (%s)",
                    self.skipped.num_rows,
                    ", ".join(
                        f"{f}: {n}"
                        for f, n in zip(self.skipped.files, self.skipped.rows, strict=True)
                    ),
                )
        if not needed:
            return
        class_weighting.scheme(loss)  # an unknown scheme fails before the label pass
        histogram = class_weights_lib.label_histogram(
            self.histogram_dataset,
            num_classes=self.num_outputs,
            label_mode=self.label_mode,
            backend=backend,
            label_fn=lambda labels: labels,
        )
        alpha = None
        if loss.alpha == "auto":
            alpha = class_weights_lib.focal_alpha(histogram, per_output=True, min_count=1)
            logging.info("focal alpha per output (negative share) %s", np.round(alpha, 4))
        self.counts = LabelCounts(histogram, class_weighting.fit(histogram, loss), alpha)

    def summary_sections(self) -> dict:
        data = {}
        if self.skipped is not None:
            data["skipped_rows"] = self.skipped.to_dict()
        if self.bad_files is not None:
            data["skipped_files"] = self.bad_files.to_dict()
        return {"data": data} if data else {}

    def report(self) -> list[TaskReport]:
        """The label histogram with its class weights, and the rows and files the data
        skipped."""
        reports = [
            class_weighting.report(
                self.counts.histogram, self.counts.class_weight, name="data/label_histogram"
            )
        ]
        if self.skipped is not None:
            rows = [[f, int(n)] for f, n in zip(self.skipped.files, self.skipped.rows, strict=True)]
            reports.append(TaskReport("data/skipped_rows", ["file", "rows dropped"], rows))
        if self.bad_files is not None:
            reports.append(bad_files_report(self.bad_files))
        return reports

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
        """The loss `loss.*` means (`build_loss`), with what `prepare` counted."""
        return build_loss(self.config.loss, self.counts, task=self.name)(labels, logits)

    def probabilities_and_targets(self, labels, logits):
        """[B, C] probabilities and 0/1 targets for the metrics (one-vs-rest if multiclass)."""
        if self.name == "multiclass":
            return tf.nn.softmax(logits), tf.one_hot(labels, self.num_outputs)
        return tf.sigmoid(logits), labels
