"""Evaluation metrics from bucketed score histograms, exact under distribution.

Each replica adds its examples to int counts of predicted probability per bucket
(`NUM_BUCKETS` equal buckets of [0, 1]) for positives and for negatives of every
output; counts are SUM-reduced over replicas and workers, so every example counts once.
PR-AUC (average precision), ROC-AUC, precision/recall/F1 at 0.5 and rates follow from
the counts; ties within a bucket are resolved as equal scores.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.pr_curve import metadata as pr_curve_metadata

from focal_dist.tasks.evaluation import Evaluation

NUM_BUCKETS = 1000


# Python-only control flow: autograph's source rewrite at every trace is pure cost.
@tf.autograph.experimental.do_not_convert
def bucket_counts(probabilities: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor | None = None):
    """(positives [C, T], negatives [C, T]) float32 counts for probabilities [B, C] and
    0/1 labels [B, C]; `weights` [B] (0 or 1) leaves rows out (padding)."""
    num_outputs = probabilities.shape[-1]
    buckets = tf.clip_by_value(
        tf.cast(tf.floor(probabilities * NUM_BUCKETS), tf.int32), 0, NUM_BUCKETS - 1
    )
    ids = buckets + tf.range(num_outputs)[None, :] * NUM_BUCKETS
    positive = tf.cast(labels, tf.float32)
    negative = 1.0 - positive
    if weights is not None:
        weights = tf.cast(weights, tf.float32)[:, None]
        positive, negative = positive * weights, negative * weights
    flat_ids = tf.reshape(ids, [-1])
    size = num_outputs * NUM_BUCKETS
    positives = tf.math.unsorted_segment_sum(tf.reshape(positive, [-1]), flat_ids, size)
    negatives = tf.math.unsorted_segment_sum(tf.reshape(negative, [-1]), flat_ids, size)
    shape = [num_outputs, NUM_BUCKETS]
    return tf.reshape(positives, shape), tf.reshape(negatives, shape)


def curve(positives: np.ndarray, negatives: np.ndarray):
    """Cumulative TP, FP for thresholds from the highest bucket down (float64)."""
    tp = np.cumsum(positives[::-1].astype(np.float64))
    fp = np.cumsum(negatives[::-1].astype(np.float64))
    return tp, fp


def output_metrics(positives: np.ndarray, negatives: np.ndarray) -> dict[str, float]:
    """Metrics of one output from its bucket counts."""
    tp, fp = curve(positives, negatives)
    total_pos, total_neg = tp[-1], fp[-1]
    metrics = {"positive_rate": total_pos / max(total_pos + total_neg, 1.0)}
    if total_pos > 0:
        recall = tp / total_pos
        precision = np.divide(tp, tp + fp, out=np.ones_like(tp), where=(tp + fp) > 0)
        previous_recall = np.concatenate([[0.0], recall[:-1]])
        metrics["pr_auc"] = float(np.sum((recall - previous_recall) * precision))
    else:
        metrics["pr_auc"] = float("nan")
    if total_pos > 0 and total_neg > 0:
        tpr = np.concatenate([[0.0], tp / total_pos])
        fpr = np.concatenate([[0.0], fp / total_neg])
        metrics["roc_auc"] = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    else:
        metrics["roc_auc"] = float("nan")
    half = NUM_BUCKETS // 2
    tp_half, fp_half = positives[half:].sum(), negatives[half:].sum()
    fn_half = total_pos - tp_half
    precision = tp_half / (tp_half + fp_half) if tp_half + fp_half > 0 else 0.0
    recall = tp_half / total_pos if total_pos > 0 else 0.0
    metrics["precision"] = float(precision)
    metrics["recall"] = float(recall)
    metrics["f1"] = float(2 * tp_half / (2 * tp_half + fp_half + fn_half)) if tp_half else 0.0
    metrics["predicted_positive_rate"] = float(
        (tp_half + fp_half) / max(total_pos + total_neg, 1.0)
    )
    return metrics


def summarize(positives: np.ndarray, negatives: np.ndarray) -> dict[str, float]:
    """Per-output metrics (suffix /class_c when C > 1) and their macro means."""
    per_output = [output_metrics(p, n) for p, n in zip(positives, negatives, strict=True)]
    if len(per_output) == 1:
        return per_output[0]
    result = {}
    for c, metrics in enumerate(per_output):
        for name, value in metrics.items():
            result[f"{name}/class_{c}"] = value
    for name in per_output[0]:
        values = [m[name] for m in per_output if not np.isnan(m[name])]
        result[name] = float(np.mean(values)) if values else float("nan")
    return result


def pr_curve_tensor(positives: np.ndarray, negatives: np.ndarray, num_thresholds: int = 101):
    """[6, num_thresholds] TP, FP, TN, FN, precision, recall at thresholds i/(n-1), for
    TensorBoard's pr_curve plugin."""
    thresholds = np.linspace(0.0, 1.0, num_thresholds)
    starts = np.minimum((thresholds * NUM_BUCKETS).astype(int), NUM_BUCKETS)
    pos_above = np.concatenate([np.cumsum(positives[::-1])[::-1], [0.0]])[starts]
    neg_above = np.concatenate([np.cumsum(negatives[::-1])[::-1], [0.0]])[starts]
    tp, fp = pos_above, neg_above
    fn, tn = positives.sum() - tp, negatives.sum() - fp
    precision = np.divide(tp, tp + fp, out=np.ones_like(tp, dtype=float), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp, dtype=float), where=(tp + fn) > 0)
    return np.stack([tp, fp, tn, fn, precision, recall]).astype(np.float32)


class BucketEvaluation(Evaluation):
    """Classification metrics from bucket counts of predicted probability.

    Statistics: [positives buckets [C, T], negatives buckets [C, T]] flattened, from
    `probabilities_and_targets(labels, logits)` ([B, C] probabilities and 0/1 targets).
    """

    def __init__(self, num_outputs: int, probabilities_and_targets: Callable):
        self.num_outputs = num_outputs
        self.probabilities_and_targets = probabilities_and_targets
        self.size = 2 * num_outputs * NUM_BUCKETS

    def statistics(self, labels, logits, valid):
        probabilities, targets = self.probabilities_and_targets(labels, logits)
        positives, negatives = bucket_counts(probabilities, targets, weights=valid)
        return tf.concat([tf.reshape(positives, [-1]), tf.reshape(negatives, [-1])], axis=0)

    def _split(self, totals: np.ndarray):
        return np.asarray(totals).reshape(2, self.num_outputs, NUM_BUCKETS)

    def metrics(self, totals):
        positives, negatives = self._split(totals)
        return summarize(positives, negatives)

    def log_line(self, metrics):
        return " ".join(f"{k} {metrics[k]:.4f}" for k in ("pr_auc", "roc_auc", "f1"))

    def write(self, summaries, totals, step):
        """Histograms of predicted probability for positives and negatives, PR curves."""
        positives, negatives = self._split(totals)
        for c in range(self.num_outputs):
            suffix = "" if self.num_outputs == 1 else f"/class_{c}"
            for name, counts in (("positives", positives[c]), ("negatives", negatives[c])):
                summaries.tensor(
                    f"eval/probability_{name}{suffix}",
                    histogram_tensor(counts),
                    histogram_metadata.create_summary_metadata(
                        display_name=f"predicted probability of {name}{suffix}", description=""
                    ),
                    step,
                )
            num_thresholds = 101
            summaries.tensor(
                f"eval/pr_curve{suffix}",
                pr_curve_tensor(positives[c], negatives[c], num_thresholds),
                pr_curve_metadata.create_summary_metadata(
                    display_name=f"PR curve{suffix}", description="", num_thresholds=num_thresholds
                ),
                step,
            )


def histogram_tensor(counts: np.ndarray, num_bins: int = 50) -> np.ndarray:
    """[num_bins, 3] (left edge, right edge, count) from fine bucket counts, the histogram
    plugin's layout."""
    merged = counts.reshape(num_bins, -1).sum(axis=1)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    return np.stack([edges[:-1], edges[1:], merged], axis=1).astype(np.float64)
