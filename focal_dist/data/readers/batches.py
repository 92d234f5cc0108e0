"""What a table reader yields for one batch it has read, after the value checks.

Every reader parses a batch into the same parts (its file, each row's index in the
file, features and labels) and hands them here: the checks, and the choice of element
the options ask for, are written once for the three readers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import tensorflow as tf

from focal_dist.data import checks
from focal_dist.data.files import ReaderOptions


@dataclasses.dataclass(frozen=True)
class Columns:
    """How a reader names what it read, in messages.

    Attributes:
      features: one name per feature column (K).
      labels: one name per label column (C, or 1 when labels are [N]).
      word: what a name is ("column"; "feature" for TFRecord keys).
      row_text: int64 row -> its description ("row 5 (line 7)", "record 5").
    """

    features: Sequence[str]
    labels: Sequence[str]
    word: str = "column"
    row_text: Callable[[tf.Tensor], tf.Tensor] = checks._default_row_text


def element(
    options: ReaderOptions,
    columns: Columns,
    *,
    file,
    file_index,
    where,
    rows: tf.Tensor,
    features: tf.Tensor | None,
    labels: tf.Tensor | None,
    first: Sequence[checks.Test] = (),
):
    """The reader's element for one checked batch of rows from `file`.

    Args:
      options: which element: `(features, labels)`, `labels` (labels_only) or the
        prediction rows `{"file", "row", "features"}`.
      columns: the names in messages.
      file: the file's path (str or string scalar).
      file_index: its index in the reader's files (int or int64 scalar).
      where: what holds the batch in messages, e.g. "CSV file /data/a.csv".
      rows: int64 [N], each row's index in its file.
      features: float32 [N, K], or None when not read.
      labels: [N] or [N, C], or None when not read (prediction rows).
      first: tests reported before the value checks (CSV text that is not a number).
    """
    if options.skip:
        return _without_bad_rows(
            options,
            columns,
            file_index=file_index,
            where=where,
            rows=rows,
            features=features,
            labels=labels,
            first=first,
        )
    result = checks.checked(
        features,
        labels,
        where=where,
        rows=rows,
        feature_names=columns.features,
        label_names=columns.labels,
        label_mode=options.label_mode,
        num_classes=options.num_classes,
        row_text=columns.row_text,
        column_word=columns.word,
        first=first,
    )
    if options.prediction_rows:
        return {"file": tf.fill(tf.shape(rows), file), "row": rows, "features": result}
    if options.labels_only and features is not None:
        return result[1]
    return result


def _without_bad_rows(options, columns, *, file_index, where, rows, features, labels, first):
    """non_finite="skip": the batch without its rows that fail a value test, or the
    counts of what fails (count_skipped). Tests in `first` still stop the reader."""
    label_test = checks.label_test(
        labels, columns.labels, options.label_mode, options.num_classes, columns.word
    )
    feature_test = checks.feature_test(features, columns.features, columns.word)
    result = checks.guard(first, where=where, rows=rows, row_text=columns.row_text) if first else 0
    valid = checks.valid_rows([t for t in (label_test, feature_test) if t is not None])
    if options.count_skipped:
        dropped = tf.size(valid, out_type=tf.int64) - tf.math.count_nonzero(valid)
        skipped = tf.concat(
            [
                checks.bad_values(label_test, len(columns.labels)),
                checks.bad_values(feature_test, len(columns.features)),
                [dropped],
            ],
            axis=0,
        )
        skipped = checks.carry(result, skipped)
        return {"file_index": tf.cast(file_index, tf.int64), "skipped": skipped}
    labels = checks.carry(result, tf.boolean_mask(labels, valid))
    if options.labels_only:
        return labels
    return tf.boolean_mask(features, valid), labels
