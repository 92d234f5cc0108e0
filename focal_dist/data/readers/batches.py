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
      where: what holds the batch in messages, e.g. "CSV file /data/a.csv".
      rows: int64 [N], each row's index in its file.
      features: float32 [N, K], or None when not read.
      labels: [N] or [N, C], or None when not read (prediction rows).
      first: tests reported before the value checks (CSV text that is not a number).
    """
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
