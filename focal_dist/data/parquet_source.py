"""Parquet files read in row chunks by tensorflow-io's Parquet kernels.

Rows are counted from 0 in each file. Chunks of rows are the unit of sharding between
input pipelines.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from focal_dist.data import checks
from focal_dist.data.files import DataError, check_label_width, label_columns
from focal_dist.distribute import InputInfo

_PARQUET_CONTAINER = "FocalDistParquet"


def _schema(path: str) -> dict[str, tuple[tf.Tensor, tf.DType]]:
    """{column: (shape, dtype)} in file order."""
    from tensorflow_io.python.ops import core_ops

    components, shapes, dtypes = core_ops.io_parquet_readable_info(
        path, shared=path, container=_PARQUET_CONTAINER
    )
    return {
        name.decode(): (shape, tf.as_dtype(int(dtype)))
        for name, shape, dtype in zip(
            components.numpy(), shapes.numpy(), dtypes.numpy(), strict=True
        )
    }


def _read(path: str, column: str, shape, dtype, start, stop) -> tf.Tensor:
    from tensorflow_io.python.ops import core_ops

    return core_ops.io_parquet_readable_read(
        input=path,
        shared=path,
        component=column,
        shape=shape,
        start=start,
        stop=stop,
        dtype=dtype,
        container=_PARQUET_CONTAINER,
    )


def _layout(files, label_column, feature_columns, labels_only):
    """(schemas by file, label columns, feature columns), checked in every file."""
    labels = label_columns(label_column)
    schemas = {path: _schema(path) for path in files}
    first = schemas[files[0]]
    missing = [c for c in labels if c not in first]
    if missing:
        raise DataError(
            f"Parquet file {files[0]!r} has no column {missing}; it has {sorted(first)}"
        )
    if labels_only:
        features = []
    elif feature_columns:
        features = list(feature_columns)
    else:
        features = [c for c in first if c not in labels]
    for path, schema in schemas.items():
        for column in labels + features:
            if column not in schema:
                raise DataError(f"Parquet file {path!r} has no column {column!r}")
            if not (schema[column][1].is_floating or schema[column][1].is_integer):
                raise DataError(
                    f"Parquet file {path!r}: column {column!r} is {schema[column][1].name}, "
                    "not numeric"
                )
        if int(schema[labels[0]][0][0]) == 0:
            raise DataError(f"Parquet file {path!r} has no rows")
    return schemas, labels, features


def parquet_feature_names(files: list[str], label_column, feature_columns=None) -> list[str]:
    """The feature columns: `feature_columns`, or every column that is not a label."""
    return _layout(files, label_column, feature_columns, labels_only=False)[2]


def parquet_dataset(
    files: list[str],
    info: InputInfo,
    *,
    label_column="label",
    feature_columns: Sequence[str] | None = None,
    labels_only: bool = False,
    check_features: bool = False,
    batch_size: int,
    chunk_rows: int = 65536,
    label_mode: str | None = None,
    num_classes: int | None = None,
) -> tf.data.Dataset:
    """Batches of Parquet columns: `label_column` (one name, or several for multi-label)
    and `feature_columns` (default: every other column, which must be numeric).

    With `labels_only`, only the label columns are read. Each pipeline reads every P-th
    chunk of `chunk_rows` rows. Features must be finite and labels valid for
    `label_mode` (see `checks.checked`).
    """
    read_features = not labels_only or check_features
    schemas, labels, features = _layout(
        files, label_column, feature_columns, labels_only=not read_features
    )
    check_label_width(f"Parquet file {files[0]!r}", labels, len(labels), label_mode, num_classes)

    def num_rows(path):
        return int(schemas[path][labels[0]][0][0])

    def split(size):
        return [
            (i, start, min(start + size, num_rows(path)))
            for i, path in enumerate(files)
            for start in range(0, num_rows(path), size)
        ]

    chunks = split(chunk_rows)
    # Smaller chunks until every pipeline has one: a pipeline without rows would end the
    # training input at once.
    while len(chunks) < info.num_pipelines and chunk_rows > 1:
        chunk_rows = (chunk_rows + 1) // 2
        chunks = split(chunk_rows)
    if len(chunks) < info.num_pipelines:
        raise DataError(
            f"Parquet file(s) {files} hold {len(chunks)} rows, fewer than the "
            f"{info.num_pipelines} input pipelines: pipeline {info.pipeline_id} would get none"
        )
    own = np.asarray(chunks[info.pipeline_id :: info.num_pipelines], np.int64).reshape(-1, 3)
    label_dtype = schemas[files[0]][labels[0]][1]
    where_by_file = tf.constant([f"Parquet file {path}" for path in files])

    def read(chunk):
        file_index, start, stop = chunk[0], chunk[1], chunk[2]

        def read_file(path):
            schema = schemas[path]

            def columns(names, dtype):
                return [
                    tf.cast(_read(path, c, schema[c][0], schema[c][1], start, stop), dtype)
                    for c in names
                ]

            label = tf.stack(columns(labels, label_dtype), axis=-1)
            if not read_features:
                return (label,)
            return tf.stack(columns(features, tf.float32), axis=-1), label

        branches = [lambda path=path: read_file(path) for path in files]
        result = tf.switch_case(tf.cast(file_index, tf.int32), branches)
        label = result[-1]
        label = label[:, 0] if len(labels) == 1 else label
        result = checks.checked(
            result[0] if read_features else None,
            label,
            where=tf.gather(where_by_file, file_index),
            rows=tf.range(start, stop),
            feature_names=features,
            label_names=labels,
            label_mode=label_mode,
            num_classes=num_classes,
        )
        return result[1] if labels_only and read_features else result

    dataset = tf.data.Dataset.from_tensor_slices(own).map(
        read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return dataset.rebatch(batch_size) if batch_size != chunk_rows else dataset
