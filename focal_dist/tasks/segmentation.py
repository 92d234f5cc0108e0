r"""What is trained: per-pixel classification of rare structures (semantic segmentation).

The task composes a segmentation source (`data.source`: segmentation_folder,
segmentation_tfrecord or segmentation_synthetic; labels int64 [B, H, W]), a model
returning [B, H, W, C] logits (`model.name`: unet or module:function) and two loss
terms, each with its own global denominator:

    focal = (1 / V) sum_{valid pixels p} w_{y_p} FL(p)        V = valid pixels (global)
    dice  = (1 / I) sum_{images i with a valid pixel} (1 - mean_c Dice_ic)   I = those images
    L = focal + loss.dice_weight * dice

FL is the softmax focal loss (`loss.gamma`, `loss.alpha`, `loss.gamma_schedule`, Poly-1's
`loss.poly_epsilon`; `loss.name = "ce"`: gamma 0, Poly-1 still applied),
ignored pixels (label = `data.ignore_label`) count nowhere, and w are the class weights
of `loss.class_weights` from the pixel histogram of the training masks (each valid
pixel counted once over all workers). Dice_ic is MONAI's soft Dice of class c over
image i's valid pixels (`DiceLoss(batch=False, softmax=True)`, smooth 1e-5).
"""

from __future__ import annotations

import tensorflow as tf

from focal_dist import class_weights as class_weights_lib
from focal_dist import models
from focal_dist.data import bad_files, get_source
from focal_dist.distribute import Backend, InputInfo
from focal_dist.models import batch_norm
from focal_dist.tasks import class_weighting
from focal_dist.tasks.base import LossTerm, Task, TaskReport, bad_files_report
from focal_dist.tasks.loss_builder import LabelCounts, build_loss, check_fits, losses_for
from focal_dist.tasks.segmentation_metrics import SegmentationEvaluation

SEGMENTATION_LOSSES = losses_for("segmentation")
_SMOOTH = 1e-5  # MONAI's smooth_nr and smooth_dr


def soft_dice_loss(labels, logits, *, ignore_label: int) -> tf.Tensor:
    """[B]: 1 - mean over classes of each image's soft Dice over its valid pixels."""
    num_classes = logits.shape[-1]
    valid = tf.cast(tf.not_equal(labels, ignore_label), tf.float32)[..., None]
    probabilities = tf.nn.softmax(logits) * valid
    targets = tf.one_hot(tf.where(valid[..., 0] > 0, labels, 0), num_classes) * valid
    intersection = tf.reduce_sum(probabilities * targets, axis=[1, 2])
    total = tf.reduce_sum(probabilities + targets, axis=[1, 2])
    dice = (2.0 * intersection + _SMOOTH) / (total + _SMOOTH)
    return tf.reduce_mean(1.0 - dice, axis=-1)


class SegmentationTask(Task):
    """Semantic segmentation from the config (see the module docstring)."""

    name = "segmentation"

    def __init__(self, config):
        self.config = config
        check_fits(config.loss.name, "segmentation")
        self.num_outputs = config.task.num_classes
        self.ignore_label = config.data.get("ignore_label", 255)
        # What `prepare` counted over all workers (valid pixels per class), as the loss uses it.
        self.counts = LabelCounts()
        self.bad_files = None  # data.bad_files = "skip": the images left out, over all workers
        self.source = get_source(config.data, label_mode="sparse", num_classes=self.num_outputs)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.source.input_shape

    def serving_inputs(self) -> dict:
        """{"masks": MaskOptions}: served images are decoded as evaluation decodes them;
        the export records the classes, the ignore label and the image size."""
        return {"masks": self.source.options}

    # --- data -------------------------------------------------------------------------
    def train_dataset(self, info: InputInfo) -> tf.data.Dataset:
        return self.source.train_batches(info)

    def eval_dataset(self, info: InputInfo) -> tf.data.Dataset | None:
        return self.source.split_batches(info, "eval")

    def calibration_dataset(self, info: InputInfo) -> tf.data.Dataset | None:
        return self.source.split_batches(info, "calibration")

    def prepare(self, backend: Backend) -> None:
        """Counts the valid pixels of every training mask per class over all workers (the
        class weights). File sources do it in the pass that decodes every image and
        checks every mask of every split: a bad mask stops the run here, named, before
        any checkpoint; an image that cannot be decoded too, or it is left out
        (`data.bad_files`)."""
        loss = self.config.loss
        class_weighting.scheme(loss)  # an unknown scheme fails before the pass
        info = InputInfo(backend.input_pipeline_id, backend.num_input_pipelines, 1)
        checked, self.bad_files = bad_files.check_source(
            self.source,
            info,
            mode=self.config.data.bad_files,
            sum_across_workers=backend.sum_across_workers,
        )
        if checked is None:  # no files: the source's labels alone
            histogram = class_weights_lib.label_histogram(
                self.source.label_batches,
                num_classes=self.num_outputs,
                label_mode="sparse",
                backend=backend,
                label_fn=lambda ids: ids,
            )
        else:
            histogram = class_weights_lib.summed_histogram(
                checked.label_counts,
                num_classes=self.num_outputs,
                label_mode="sparse",
                backend=backend,
            )
        self.counts = LabelCounts(histogram, class_weighting.fit(histogram, loss, what="pixel"))

    def report(self) -> list[TaskReport]:
        """The pixel histogram and the class weights fitted from it, and the image files
        left out."""
        reports = [
            class_weighting.report(
                self.counts.histogram, self.counts.class_weight, name="data/pixel_histogram"
            )
        ]
        if self.bad_files is not None:
            reports.append(bad_files_report(self.bad_files))
        return reports

    def summary_sections(self) -> dict:
        if self.bad_files is None:
            return {}
        return {"data": {"skipped_files": self.bad_files.to_dict()}}

    # --- model and loss ---------------------------------------------------------------
    def build_model(self):
        """`config.model.name` (unet or module:function) returning [B, H, W, C] logits."""
        model = models.build_model(
            self.config.model,
            num_outputs=self.num_outputs,
            input_shape=self.input_shape,
            seed=self.config.train.seed,
            l2=self.config.model.l2,
            dense=True,
        )
        if self.config.model.get("sync_batch_norm", False):
            batch_norm.synchronize(model)
        return model

    def focal_loss(self, labels, logits) -> tf.Tensor:
        """[B, H, W] focal loss per pixel (`build_loss`), class weights applied; 0 where
        ignored."""
        loss = build_loss(
            self.config.loss, self.counts, task="segmentation", ignore_label=self.ignore_label
        )
        return loss(labels, logits)

    def valid_pixels(self, labels) -> tf.Tensor:
        return tf.cast(tf.not_equal(labels, self.ignore_label), tf.float32)

    def images_with_valid_pixels(self, labels) -> tf.Tensor:
        has_valid = tf.reduce_any(tf.not_equal(labels, self.ignore_label), axis=[1, 2])
        return tf.cast(has_valid, tf.float32)

    def dice_loss(self, labels, logits) -> tf.Tensor:
        return soft_dice_loss(labels, logits, ignore_label=self.ignore_label)

    def loss_terms(self) -> tuple[LossTerm, ...]:
        terms = [LossTerm("focal", self.focal_loss, mask=self.valid_pixels)]
        dice_weight = float(self.config.loss.get("dice_weight", 0.0))
        if dice_weight:
            terms.append(
                LossTerm(
                    "dice", self.dice_loss, mask=self.images_with_valid_pixels, weight=dice_weight
                )
            )
        return tuple(terms)

    def evaluation(self) -> SegmentationEvaluation:
        return SegmentationEvaluation(
            self.num_outputs, self.ignore_label, self.config.task.get("eval_images", 0)
        )


__all__ = ["SEGMENTATION_LOSSES", "SegmentationTask", "soft_dice_loss"]
