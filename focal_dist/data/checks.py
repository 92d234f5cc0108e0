"""In-pipeline checks of file data: finite features, finite labels in the task's range.

A check costs one vectorised test and one reduction per batch; only a failing batch
pays for finding the first bad value and formatting the message, which names the
file, the column (or feature key and index) and the row (or record), then stops the
input pipeline with `tf.errors.InvalidArgumentError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf


def _default_row_text(row: tf.Tensor) -> tf.Tensor:
    return tf.strings.join(["row ", tf.strings.as_string(row)])


def check(ok, values, *, where, names, rows, problem: str, row_text=_default_row_text) -> tf.Tensor:
    """An op that fails naming the first False of `ok` ([N, K]): where, column, row, value.

    `names` holds K column descriptions ("column f3"), `rows` N int64 row indices.
    """

    def fail():
        bad = tf.where(tf.logical_not(ok))
        first = bad[0]
        value = tf.gather_nd(values, first)
        if value.dtype == tf.string:
            value_text = value
        elif value.dtype.is_integer:
            value_text = tf.strings.as_string(value)
        else:
            value_text = tf.strings.as_string(value, shortest=True)
        message = tf.strings.join(
            [
                where,
                ", ",
                tf.gather(names, first[1]),
                ", ",
                row_text(tf.gather(rows, first[0])),
                ": ",
                problem,
                ", got ",
                value_text,
                " (",
                tf.strings.as_string(tf.shape(bad, out_type=tf.int64)[0]),
                " bad value(s) in this batch of ",
                tf.strings.as_string(tf.shape(ok, out_type=tf.int64)[0]),
                " rows)",
            ]
        )
        # No quotes in `message`: TF escapes them in assertion messages.
        with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
            return tf.constant(False)

    return tf.cond(tf.reduce_all(ok), lambda: tf.constant(True), fail)


def label_problem(labels: tf.Tensor, label_mode: str | None, num_classes: int | None):
    """([N, C] bool ok, description of a valid label) for a batch of labels."""
    finite = tf.math.is_finite(labels) if labels.dtype.is_floating else tf.ones_like(labels, bool)
    if label_mode in ("binary", "multi_label"):
        ok = tf.logical_and(finite, tf.logical_or(tf.equal(labels, 0), tf.equal(labels, 1)))
        return ok, f"{label_mode} labels must be 0 or 1"
    if label_mode == "sparse":
        whole = tf.equal(labels, tf.round(labels)) if labels.dtype.is_floating else finite
        in_range = tf.logical_and(labels >= 0, labels < num_classes)
        ok = tf.logical_and(tf.logical_and(finite, whole), in_range)
        return ok, f"class labels must be integers in [0, {num_classes})"
    return finite, "labels must be finite"


def checked(
    features: tf.Tensor | None,
    labels: tf.Tensor,
    *,
    where,
    rows: tf.Tensor,
    feature_names: Sequence[str] | tf.Tensor,
    label_names: Sequence[str],
    label_mode: str | None = None,
    num_classes: int | None = None,
    row_text: Callable[[tf.Tensor], tf.Tensor] = _default_row_text,
    column_word: str = "column",
):
    """`(features, labels)` (or `labels` when `features` is None) after their checks.

    Args:
      features: float [N, K] or None.
      labels: [N] or [N, C], integer or float.
      where: what holds the batch, e.g. "CSV file /data/a.csv" (str or string tensor).
      rows: int64 [N], each row's index in its file.
      feature_names: K names, one per feature column.
      label_names: one name per label column (C, or 1 when labels are [N]).
      label_mode: "binary" or "multi_label" (values 0/1), "sparse" (ids in
        [0, num_classes)), or None (labels only need to be finite).
      row_text: int64 row -> its description in messages ("row 5 (line 7)").
      column_word: what a name is ("column"; "feature" for TFRecord keys).
    """
    as_matrix = tf.reshape(labels, [tf.shape(labels)[0], -1])
    ok, problem = label_problem(as_matrix, label_mode, num_classes)
    checks = [
        check(
            ok,
            as_matrix,
            where=where,
            names=tf.constant([f"{column_word} {name}" for name in label_names]),
            rows=rows,
            row_text=row_text,
            problem=problem,
        )
    ]
    if features is not None:
        checks.append(
            check(
                tf.math.is_finite(features),
                features,
                where=where,
                names=tf.constant([f"{column_word} {name}" for name in feature_names]),
                rows=rows,
                row_text=row_text,
                problem="feature values must be finite (NaN and inf are refused)",
            )
        )
    with tf.control_dependencies(checks):
        labels = tf.identity(labels)
        if features is None:
            return labels
        return tf.identity(features), labels
