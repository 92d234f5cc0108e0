"""Table readers by name: TFRecord (tf.train.Example), CSV (header row), Parquet.

Each reader (`read(files, info, options)`) returns this input pipeline's shard of the
data as batches of `(features, labels)`, of labels alone, or of prediction rows, as its
`ReaderOptions` ask. Shards never overlap and together cover every row once.

Errors name the file and the column: a missing file or column, an empty or header-only
file, a non-numeric value (with its row), a NaN or inf feature or label (with its row or
record), a label outside the task's range. The value checks run inside tf.data, one
vectorised test per batch, and stop the pipeline with `tf.errors.InvalidArgumentError`.

The number of features comes from the data: the CSV header or the Parquet schema
(every column that is not a label) or the TFRecord feature's length.
`resolve_num_features` turns a configured count into the real one: 0 (or None) means
"read it from the file"; any other value must match the file.
"""

from __future__ import annotations

from types import ModuleType

import tensorflow as tf

from focal_dist.data.files import DataError, ReaderOptions, list_files
from focal_dist.data.readers import csv, parquet, tfrecord
from focal_dist.distribute import InputInfo

READERS: dict[str, ModuleType] = {"tfrecord": tfrecord, "csv": csv, "parquet": parquet}
FILE_SOURCES = tuple(READERS)


def reader(source: str) -> ModuleType:
    """The reader module of `source`, or a DataError naming the known ones."""
    if source not in READERS:
        raise DataError(f"data source must be one of {', '.join(READERS)}; got {source!r}")
    return READERS[source]


def num_features_in_files(
    source: str, path, *, label_column="label", feature_column: str = "features"
) -> int:
    """Features per example in the files at `path`: every non-label column of the CSV
    header or Parquet schema, or the length of the TFRecord `feature_column`."""
    options = ReaderOptions(label_column=label_column, feature_column=feature_column)
    return len(reader(source).feature_names(list_files(path), options))


def resolve_num_features(
    source: str,
    path,
    num_features: int | None,
    *,
    label_column="label",
    feature_column: str = "features",
) -> int:
    """The files' feature count; a configured `num_features` other than 0/None must match.

    Raises:
      DataError: `num_features` disagrees with the files (both numbers are named).
    """
    found = num_features_in_files(
        source, path, label_column=label_column, feature_column=feature_column
    )
    if num_features and num_features != found:
        options = ReaderOptions(label_column=label_column, feature_column=feature_column)
        raise DataError(
            f"data.num_features is {num_features} but {source} data {path!r} has {found} "
            f"{READERS[source].features_phrase(options)}; set data.num_features={found}, "
            "or 0 to read it from the files"
        )
    return found


def make_dataset(source: str, path, info: InputInfo, **options) -> tf.data.Dataset:
    """This pipeline's shard of `path` read as `source` ("tfrecord", "csv", "parquet").

    `options` are `ReaderOptions` fields (`batch_size`, `label_column`, `labels_only`,
    `label_mode`, ...). A `label_mode` ("binary", "multi_label" or "sparse", with
    `num_classes`) makes the reader refuse labels outside the task's range, naming file,
    column and row; without it labels only need to be finite. Features must always be
    finite.

    `labels_only` returns labels alone (for Parquet only the label columns are read);
    with `check_features` as well, the features are still read and checked: a label pass
    before training (the class-weight histogram) then also finds every bad feature value
    before the first step, and so before any checkpoint.
    """
    read, options = reader(source).read, ReaderOptions(**options)
    return read(list_files(path), info, options)
