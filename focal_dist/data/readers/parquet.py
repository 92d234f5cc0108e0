"""Parquet files read in row chunks by tensorflow-io's Parquet kernels.

Rows are counted from 0 in each file. Chunks of rows are the unit of sharding between
input pipelines.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from focal_dist.data.files import DataError, ReaderOptions, check_label_width
from focal_dist.data.readers import batches
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


def _layout(files: list[str], options: ReaderOptions):
    """(schemas by file, label columns, feature columns) to read, checked in every file.

    Features are every column that is not a label. Prediction rows need no label column
    and read none; labels_only reads no feature column unless check_features.
    """
    schemas = {path: _schema(path) for path in files}
    first = schemas[files[0]]
    labels = list(options.label_column)
    missing = [c for c in labels if c not in first]
    if missing and options.read_labels:
        raise DataError(
            f"Parquet file {files[0]!r} has no column {missing}; it has {sorted(first)}"
        )
    features = [c for c in first if c not in labels] if options.read_features else []
    labels = labels if options.read_labels else []
    for path, schema in schemas.items():
        for column in labels + features:
            if column not in schema:
                raise DataError(f"Parquet file {path!r} has no column {column!r}")
            if not (schema[column][1].is_floating or schema[column][1].is_integer):
                raise DataError(
                    f"Parquet file {path!r}: column {column!r} is {schema[column][1].name}, "
                    "not numeric"
                )
        if int(schema[(labels + features)[0]][0][0]) == 0:
            raise DataError(f"Parquet file {path!r} has no rows")
    return schemas, labels, features


def column_names(files: list[str], options: ReaderOptions) -> tuple[list[str], list[str]]:
    """(label columns, feature columns): the features are every other column, in file
    order."""
    _, labels, features = _layout(files, dataclasses.replace(options, labels_only=False))
    return labels, features


def feature_names(files: list[str], options: ReaderOptions) -> list[str]:
    """The feature columns, in file order: every column that is not a label."""
    return column_names(files, options)[1]


def features_phrase(options: ReaderOptions) -> str:
    """What the feature count counts, for messages."""
    return f"feature columns (every column but {list(options.label_column)})"


def read(files: list[str], info: InputInfo, options: ReaderOptions) -> tf.data.Dataset:
    """Batches of Parquet columns, as `options` asks (see `ReaderOptions`): the label
    column(s) and every other column as a feature (numeric, all of them).

    Each pipeline reads every P-th chunk of `options.chunk_rows` rows. Features must be
    finite and labels valid for the label mode (see `checks.checked`).
    """
    schemas, labels, features = _layout(files, options)
    if options.read_labels:
        check_label_width(f"Parquet file {files[0]!r}", labels, len(labels), options)
    counted = (labels + features)[0]

    def num_rows(path):
        return int(schemas[path][counted][0][0])

    def split(size):
        return [
            (i, start, min(start + size, num_rows(path)))
            for i, path in enumerate(files)
            for start in range(0, num_rows(path), size)
        ]

    chunk_rows = options.chunk_rows
    chunks = split(chunk_rows)
    # Smaller chunks until every pipeline has one: a pipeline without rows would end the
    # training input at once. (Prediction rows may leave a pipeline without any.)
    while len(chunks) < info.num_pipelines and chunk_rows > 1:
        chunk_rows = (chunk_rows + 1) // 2
        chunks = split(chunk_rows)
    if len(chunks) < info.num_pipelines and not options.prediction_rows:
        raise DataError(
            f"Parquet file(s) {files} hold {len(chunks)} rows, fewer than the "
            f"{info.num_pipelines} input pipelines: pipeline {info.pipeline_id} would get none"
        )
    own = np.asarray(chunks[info.pipeline_id :: info.num_pipelines], np.int64).reshape(-1, 3)
    label_dtype = schemas[files[0]][labels[0]][1] if labels else None
    columns = batches.Columns(features, labels)
    files_tensor = tf.constant(files)

    def read_chunk(chunk):
        file_index, start, stop = chunk[0], chunk[1], chunk[2]

        def read_file(path):
            schema = schemas[path]

            def stacked(names, dtype):
                return tf.stack(
                    [
                        tf.cast(_read(path, c, schema[c][0], schema[c][1], start, stop), dtype)
                        for c in names
                    ],
                    axis=-1,
                )

            label_part = (stacked(labels, label_dtype),) if labels else ()
            return label_part + ((stacked(features, tf.float32),) if features else ())

        branches = [lambda path=path: read_file(path) for path in files]
        result = tf.switch_case(tf.cast(file_index, tf.int32), branches)
        label = result[0] if labels else None
        if label is not None and len(labels) == 1:
            label = label[:, 0]
        file = tf.gather(files_tensor, file_index)
        return batches.element(
            options,
            columns,
            file=file,
            file_index=file_index,
            where=tf.strings.join(["Parquet file ", file]),
            rows=tf.range(start, stop),
            features=result[-1] if features else None,
            labels=label,
        )

    dataset = tf.data.Dataset.from_tensor_slices(own).map(
        read_chunk, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if options.count_skipped or options.batch_size == chunk_rows:
        return dataset  # counts are per chunk, of one file each
    return dataset.rebatch(options.batch_size)
