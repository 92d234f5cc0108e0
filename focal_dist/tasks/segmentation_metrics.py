r"""Segmentation metrics from an all-reduced confusion matrix, exact over replicas.

Each replica adds its valid pixels (label != ignore, real rows) to a confusion matrix
M[true, predicted] (C x C, predicted = argmax of the logits) and, for every foreground
class c >= 1, to bucket counts of its softmax probability for pixels of c and of other
classes (tasks/bucket_metrics.py). The step sums the vectors over replicas in float64,
so every pixel counts once; from the sums, as Model Garden's `PerClassIoU` / `MeanIoU`:

    IoU_c  = M_cc / (sum_j M_cj + sum_i M_ic - M_cc)
    Dice_c = 2 M_cc / (sum_j M_cj + sum_i M_ic)
    pixel accuracy = trace(M) / sum(M)

A class absent from both the labels and the predictions has no IoU or Dice (NaN); mIoU
and the mean Dice average the classes that have one. The pixel PR-AUC of class c is the
average precision of its probability over valid pixels.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from focal_dist.tasks import bucket_metrics
from focal_dist.tasks.base import Evaluation

# The colours of the classes in the image panel (class k: _PALETTE[k % len]).
_PALETTE = np.array(
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48]],
    np.uint8,
)
_IGNORED = np.array([128, 128, 128], np.uint8)


def confusion_matrix(labels, predictions, weights, num_classes: int) -> tf.Tensor:
    """float32 [C, C]: sum of `weights` (0/1) by (label, prediction); weight-0 pixels
    may hold any label."""
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    predictions = tf.reshape(tf.cast(predictions, tf.int32), [-1])
    weights = tf.reshape(tf.cast(weights, tf.float32), [-1])
    labels = tf.where(weights > 0, labels, 0)
    cells = tf.math.unsorted_segment_sum(
        weights, labels * num_classes + predictions, num_classes * num_classes
    )
    return tf.reshape(cells, [num_classes, num_classes])


def confusion_metrics(matrix: np.ndarray) -> dict:
    """IoU and Dice per class (lists), their means, pixel accuracy (module docstring)."""
    matrix = np.asarray(matrix, np.float64)
    true_positives = np.diag(matrix)
    union = matrix.sum(axis=1) + matrix.sum(axis=0) - true_positives
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positives / union, np.nan)
        dice = np.where(union > 0, 2 * true_positives / (union + true_positives), np.nan)
    total = matrix.sum()
    metrics = {
        "iou": [float(v) for v in iou],
        "dice": [float(v) for v in dice],
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "mean_dice": float(np.nanmean(dice)) if np.isfinite(dice).any() else float("nan"),
        "pixel_accuracy": float(true_positives.sum() / total) if total else float("nan"),
        "num_pixels": float(total),
    }
    for c in range(len(iou)):
        metrics[f"iou/class_{c}"] = metrics["iou"][c]
        metrics[f"dice/class_{c}"] = metrics["dice"][c]
    return metrics


class SegmentationEvaluation(Evaluation):
    """Confusion matrix and foreground probability buckets of the valid pixels.

    Statistics: [M (C*C), positives buckets [C-1, T], negatives buckets [C-1, T]].
    `num_images`: eval examples shown in TensorBoard as input | truth | prediction.
    """

    def __init__(self, num_classes: int, ignore_label: int, num_images: int = 0):
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.num_images = num_images
        self.size = num_classes * num_classes + 2 * (num_classes - 1) * bucket_metrics.NUM_BUCKETS

    def statistics(self, labels, logits, valid):
        classes = self.num_classes
        pixels = tf.cast(tf.not_equal(labels, self.ignore_label), tf.float32)
        pixels *= tf.reshape(tf.cast(valid, tf.float32), [-1, 1, 1])
        matrix = confusion_matrix(labels, tf.argmax(logits, axis=-1), pixels, classes)
        probabilities = tf.reshape(tf.nn.softmax(logits)[..., 1:], [-1, classes - 1])
        targets = tf.one_hot(tf.reshape(tf.cast(labels, tf.int32), [-1]), classes)[:, 1:]
        positives, negatives = bucket_metrics.bucket_counts(
            probabilities, targets, weights=tf.reshape(pixels, [-1])
        )
        return tf.concat(
            [tf.reshape(matrix, [-1]), tf.reshape(positives, [-1]), tf.reshape(negatives, [-1])],
            axis=0,
        )

    def _split(self, totals):
        totals = np.asarray(totals, np.float64)
        cells = self.num_classes**2
        matrix = totals[:cells].reshape(self.num_classes, self.num_classes)
        buckets = totals[cells:].reshape(2, self.num_classes - 1, bucket_metrics.NUM_BUCKETS)
        return matrix, buckets[0], buckets[1]

    def metrics(self, totals):
        matrix, positives, negatives = self._split(totals)
        metrics = confusion_metrics(matrix)
        pr_aucs = []
        for c in range(1, self.num_classes):
            pr_auc = bucket_metrics.output_metrics(positives[c - 1], negatives[c - 1])["pr_auc"]
            metrics[f"pr_auc/class_{c}"] = pr_auc
            pr_aucs.append(pr_auc)
        finite = [v for v in pr_aucs if not np.isnan(v)]
        metrics["pr_auc"] = float(np.mean(finite)) if finite else float("nan")
        return metrics

    def log_line(self, metrics):
        keys = ("miou", "mean_dice", "pixel_accuracy", "pr_auc")
        return " ".join(f"{k} {metrics[k]:.4f}" for k in keys)

    def write(self, summaries, totals, step):
        """PR curves of each foreground class's pixel probability."""
        _, positives, negatives = self._split(totals)
        from tensorboard.plugins.pr_curve import metadata

        for c in range(1, self.num_classes):
            summaries.tensor(
                f"eval/pr_curve/class_{c}",
                bucket_metrics.pr_curve_tensor(positives[c - 1], negatives[c - 1]),
                metadata.create_summary_metadata(
                    display_name=f"pixel PR curve of class {c}", description="", num_thresholds=101
                ),
                step,
            )

    def pictures(self, features, labels, logits) -> np.ndarray:
        """uint8 [N, H, 3W, 3]: each example's input | ground truth | prediction (classes
        coloured, ignored pixels grey)."""
        features = np.asarray(features, np.float32)
        if features.shape[-1] == 1:
            features = np.repeat(features, 3, axis=-1)
        inputs = np.clip(features[..., :3] * 255.0, 0, 255).astype(np.uint8)
        labels = np.asarray(labels)
        truth = _PALETTE[np.where(labels == self.ignore_label, 0, labels) % len(_PALETTE)]
        truth[labels == self.ignore_label] = _IGNORED
        prediction = _PALETTE[np.argmax(np.asarray(logits), axis=-1) % len(_PALETTE)]
        return np.concatenate([inputs, truth, prediction], axis=2)
