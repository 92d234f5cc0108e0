"""File sources: TFRecord (tf.train.Example), CSV (header row) and Parquet (tensorflow-io).

Each reader returns this input pipeline's shard of the data as batches of
`(features, labels)`, or of labels alone with `labels_only=True` (for Parquet only the
label columns are then read). Shards never overlap and together cover every row once.

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

import tensorflow as tf

from focal_dist.data.csv_source import csv_dataset, csv_feature_names
from focal_dist.data.files import (
    FILE_SOURCES,
    LABEL_MODES,
    DataError,
    label_columns,
    list_files,
    source_from_path,
)
from focal_dist.data.parquet_source import parquet_dataset, parquet_feature_names
from focal_dist.data.tfrecord_source import tfrecord_dataset, tfrecord_num_features
from focal_dist.distribute import InputInfo

SOURCES = FILE_SOURCES

__all__ = [
    "SOURCES",
    "DataError",
    "list_files",
    "make_dataset",
    "num_features_in_files",
    "resolve_num_features",
    "source_from_path",
]


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise DataError(f"data source must be one of {', '.join(SOURCES)}; got {source!r}")


def _first_label(label_column) -> str:
    return label_column if isinstance(label_column, str) else label_column[0]


def num_features_in_files(
    source: str, path, *, label_column="label", feature_column: str = "features"
) -> int:
    """Features per example in the files at `path`: every non-label column of the CSV
    header or Parquet schema, or the length of the TFRecord `feature_column`."""
    _check_source(source)
    files = list_files(path)
    if source == "csv":
        return len(csv_feature_names(files, label_column))
    if source == "parquet":
        return len(parquet_feature_names(files, label_column))
    return tfrecord_num_features(files, feature_column)


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
        what = {
            "csv": f"feature columns (every column but {label_columns(label_column)})",
            "parquet": f"feature columns (every column but {label_columns(label_column)})",
            "tfrecord": f"values in feature {feature_column!r}",
        }[source]
        raise DataError(
            f"data.num_features is {num_features} but {source} data {path!r} has {found} "
            f"{what}; set data.num_features={found}, or 0 to read it from the files"
        )
    return found


def make_dataset(
    source: str,
    path,
    info: InputInfo,
    *,
    label_column="label",
    feature_column: str = "features",
    labels_only: bool = False,
    check_features: bool = False,
    batch_size: int,
    label_mode: str | None = None,
    num_classes: int | None = None,
    **options,
) -> tf.data.Dataset:
    """This pipeline's shard of `path` read as `source` ("tfrecord", "csv", "parquet").

    `label_mode` ("binary", "multi_label" or "sparse", with `num_classes`) makes the
    reader refuse labels outside the task's range, naming file, column and row; without
    it labels only need to be finite. Features must always be finite.

    `labels_only` returns labels alone (for Parquet only the label columns are read);
    with `check_features` as well, the features are still read and checked: a label pass
    before training (the class-weight histogram) then also finds every bad feature value
    before the first step, and so before any checkpoint.
    """
    _check_source(source)
    if label_mode is not None and label_mode not in LABEL_MODES:
        raise DataError(f"label_mode must be one of {', '.join(LABEL_MODES)}; got {label_mode!r}")
    if label_mode is not None and not num_classes:
        raise DataError(f"label_mode {label_mode!r} needs num_classes; got {num_classes!r}")
    files = list_files(path)
    labels = {"label_mode": label_mode, "num_classes": num_classes}
    common = {
        "labels_only": labels_only,
        "check_features": check_features,
        "batch_size": batch_size,
        **labels,
    }
    if source == "tfrecord":
        return tfrecord_dataset(
            files,
            info,
            label_key=_first_label(label_column),
            feature_key=feature_column,
            **common,
            **options,
        )
    if source == "csv":
        return csv_dataset(files, info, label_column=label_column, **common, **options)
    return parquet_dataset(files, info, label_column=label_column, **common, **options)
