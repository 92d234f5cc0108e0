r"""Lesion-level counts and metrics: 8-connected components of the truth and prediction.

For each foreground class c and image, with T_c the components of {truth = c} and P_c
those of {prediction = c} (tasks/components.py), a true component is *detected* when
one of its pixels is predicted c, and a predicted component is *true* when one of its
pixels is truly c. With an ignore label, a predicted component lying wholly on ignored
pixels is not counted (nothing is known there). Per image and class, `lesion_counts`:

    [|T_c|, |{t in T_c detected}|, |P_c|, |{q in P_c true}|, |P_c| - true, 1]

(the last column counts the image), a vector that sums over images, replicas and
workers; `lesion_metrics` of the sums gives, per class,

    recall       = detected / |T|       precision = true / |P|
    fp_per_image = false positives / images

`lesion_histograms` keeps sizes, so that the counts after dropping predicted components
under m pixels (decision.min_component_pixels) follow for every m from one pass: row 0
counts true components by the size of the largest predicted component of their class
touching them (0: missed), rows 1 and 2 the true and the false predicted components by
their own size; sizes >= S - 1 share the last bin. Then, for 1 <= m <= S - 1,

    detected(m) = sum_{s >= m} H[0, s]     true(m) = sum_{s >= m} H[1, s]
    false(m)    = sum_{s >= m} H[2, s]     |T| = sum_s H[0, s]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from focal_dist.tasks.components import class_masks, component_sizes, label_components

COUNTS = ("true", "detected", "predicted", "predicted_true", "false_positives", "images")
HISTOGRAM_ROWS = ("true_by_detecting_size", "predicted_true_by_size", "false_by_size")


def _per_component_max(labels, values):
    """[B, H W + 1]: the maximum of int32 `values` [B, H, W] (>= 0) over each component,
    by its label; 0 for a label no pixel carries; slot 0 gathers the background."""
    shape = tf.shape(labels)
    batch, slots = shape[0], shape[1] * shape[2] + 1
    segments = tf.reshape(labels + tf.range(batch)[:, None, None] * slots, [-1])
    reduced = tf.math.unsorted_segment_max(tf.reshape(values, [-1]), segments, batch * slots)
    return tf.reshape(tf.maximum(reduced, 0), [batch, slots])  # empty segments: 0


def _tables(truth, prediction, num_classes: int, ignore_label):
    """Per component, as [B, K-1, H W + 1] int32 tables by label (0 where no component):
    true sizes, largest touching predicted size, predicted sizes (with a valid pixel),
    whether each predicted component touches a true one."""
    truth = tf.convert_to_tensor(truth)
    prediction = tf.convert_to_tensor(prediction)
    if truth.shape.rank not in (2, 3) or prediction.shape.rank != truth.shape.rank:
        raise ValueError(
            "truth and prediction must be class ids of one rank, [H, W] or [B, H, W]; got "
            f"shapes {truth.shape} and {prediction.shape}"
        )
    if truth.shape.rank == 2:
        truth, prediction = truth[None], prediction[None]
    shape = tf.shape(truth)
    classes = num_classes - 1
    true_masks = class_masks(truth, num_classes)  # [B, K-1, H, W]
    predicted_masks = class_masks(prediction, num_classes)
    both = tf.reshape(tf.stack([true_masks, predicted_masks]), [-1, shape[1], shape[2]])
    labels, _ = label_components(both)  # one loop for truth and prediction
    sizes = component_sizes(labels)
    maps = [2, shape[0], classes, shape[1], shape[2]]
    (true_labels, predicted_labels) = tf.unstack(tf.reshape(labels, maps))
    (true_sizes, predicted_sizes) = tf.unstack(tf.reshape(sizes, maps))
    flat = [-1, shape[1], shape[2]]
    overlap = true_masks & predicted_masks
    touching_size = tf.where(overlap, predicted_sizes, 0)
    valid = tf.ones_like(truth, tf.bool) if ignore_label is None else truth != ignore_label
    predicted_valid = predicted_masks & valid[:, None]

    def table(labels, values):
        result = _per_component_max(
            tf.reshape(labels, flat), tf.reshape(tf.cast(values, tf.int32), flat)
        )
        return tf.reshape(result, [shape[0], classes, -1])

    true_size = table(true_labels, true_sizes)
    detecting_size = table(true_labels, touching_size)
    counted = table(predicted_labels, predicted_valid) > 0
    predicted_size = tf.where(counted, table(predicted_labels, predicted_sizes), 0)
    touches = table(predicted_labels, overlap) > 0
    return true_size, detecting_size, predicted_size, touches


def lesion_counts(truth, prediction, *, num_classes: int, ignore_label=None) -> tf.Tensor:
    """int32 [B, K - 1, 6] (or [K - 1, 6] for one [H, W] image): per image and foreground
    class, [|T|, detected, |P|, true predicted, false positives, 1] (module docstring).

    Args:
      truth: class ids [B, H, W] or [H, W]; `ignore_label` pixels are in no class.
      prediction: class ids of the same shape (a decision, after any component filter).
      num_classes: K, background included.
      ignore_label: the truth's ignored value, or None.
    """
    single = tf.convert_to_tensor(truth).shape.rank == 2
    true_size, detecting_size, predicted_size, touches = _tables(
        truth, prediction, num_classes, ignore_label
    )

    def count(condition):
        return tf.reduce_sum(tf.cast(condition, tf.int32), axis=-1)

    true_count = count(true_size > 0)
    predicted_true = count((predicted_size > 0) & touches)
    predicted = count(predicted_size > 0)
    counts = tf.stack(
        [
            true_count,
            count(detecting_size > 0),
            predicted,
            predicted_true,
            predicted - predicted_true,
            tf.ones_like(true_count),
        ],
        axis=-1,
    )
    return counts[0] if single else counts


def lesion_histograms(
    truth, prediction, *, num_classes: int, num_sizes: int = 256, ignore_label=None
) -> tf.Tensor:
    """int32 [K - 1, 3, S] summed over the images of `truth` and `prediction` (class ids
    [B, H, W] or [H, W]): the rows of HISTOGRAM_ROWS by component size, S = `num_sizes`
    bins, sizes >= S - 1 in the last (module docstring)."""
    true_size, detecting_size, predicted_size, touches = _tables(
        truth, prediction, num_classes, ignore_label
    )
    classes = num_classes - 1

    def histogram(sizes, keep):
        bins = tf.minimum(sizes, num_sizes - 1) + num_sizes * tf.range(classes)[None, :, None]
        weights = tf.reshape(tf.cast(keep, tf.int32), [-1])
        counts = tf.math.unsorted_segment_sum(weights, tf.reshape(bins, [-1]), classes * num_sizes)
        return tf.reshape(counts, [classes, num_sizes])

    predicted = predicted_size > 0
    return tf.stack(
        [
            histogram(detecting_size, true_size > 0),
            histogram(predicted_size, predicted & touches),
            histogram(predicted_size, predicted & ~touches),
        ],
        axis=1,
    )


def counts_at(histograms, min_pixels: int, num_images: int) -> np.ndarray:
    """int64 [K - 1, 6]: `lesion_counts` summed over the images, after predicted
    components under `min_pixels` (1 <= m <= S - 1) are dropped, from summed histograms."""
    histograms = np.asarray(histograms, np.int64)
    if not 1 <= min_pixels <= histograms.shape[-1] - 1:
        raise ValueError(
            f"min_pixels must be in [1, {histograms.shape[-1] - 1}] for histograms of "
            f"{histograms.shape[-1]} sizes; got {min_pixels!r}"
        )
    at_least = histograms[..., min_pixels:].sum(axis=-1)
    true_count = histograms[:, 0].sum(axis=-1)
    images = np.full_like(true_count, num_images)
    predicted_true, false = at_least[:, 1], at_least[:, 2]
    columns = [true_count, at_least[:, 0], predicted_true + false, predicted_true, false, images]
    return np.stack(columns, axis=-1)


def lesion_metrics(sums) -> list[dict[str, float]]:
    """Per foreground class (class c at index c - 1) from `lesion_counts` summed over
    images: {"recall", "precision", "fp_per_image", "true", "predicted"}; a ratio with a
    zero denominator is NaN."""
    sums = np.asarray(sums, np.float64).reshape(-1, len(COUNTS))

    def ratio(a, b):
        return float(a / b) if b > 0 else float("nan")

    return [
        {
            "recall": ratio(true_detected, true),
            "precision": ratio(predicted_true, predicted),
            "fp_per_image": ratio(false, images),
            "true": float(true),
            "predicted": float(predicted),
        }
        for true, true_detected, predicted, predicted_true, false, images in sums
    ]
