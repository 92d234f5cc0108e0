"""Parquet files read with pyarrow in chunks of rows, the unit of sharding between
input pipelines.

Rows are counted from 0 in each file. Features are every column that is not a label,
in file order; every column read must be numeric (integer or floating point).
pyarrow decodes each chunk's columns to NumPy (data/readers/parquet_rows.py); the value
checks and batching run in tf.data.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import tensorflow as tf

from focal_dist.data.files import DataError, ReaderOptions, check_label_width
from focal_dist.data.readers import batches, parquet_rows
from focal_dist.distribute import InputInfo


def _layout(files: list[str], options: ReaderOptions):
    """(rows by file, label columns, feature columns, label dtype) to read, checked in
    every file.

    Features are every column that is not a label. Prediction rows need no label column
    and read none; labels_only reads no feature column unless check_features.
    """
    schemas = {path: parquet_rows.schema(path) for path in files}
    first = schemas[files[0]][0]
    labels = list(options.label_column)
    missing = [c for c in labels if c not in first]
    if missing and options.read_labels:
        raise DataError(
            f"Parquet file {files[0]!r} has no column {missing}; it has {sorted(first)}"
        )
    features = [c for c in first if c not in labels] if options.read_features else []
    labels = labels if options.read_labels else []
    for path, (types, num_rows) in schemas.items():
        for column in labels + features:
            if column not in types:
                raise DataError(f"Parquet file {path!r} has no column {column!r}")
            if not parquet_rows.is_numeric(types[column]):
                raise DataError(
                    f"Parquet file {path!r}: column {column!r} is {types[column]}, "
                    "not numeric (integer or floating point)"
                )
        if num_rows == 0:
            raise DataError(f"Parquet file {path!r} has no rows")
    if not labels + features:
        raise DataError(
            f"Parquet file {files[0]!r} has no feature column: its columns {list(first)} "
            f"are all labels ({list(options.label_column)})"
        )
    # Every file's labels are read as the first file's first label column is stored.
    label_dtype = np.dtype(first[labels[0]].to_pandas_dtype()) if labels else None
    num_rows = {path: rows for path, (_, rows) in schemas.items()}
    return num_rows, labels, features, label_dtype


def column_names(files: list[str], options: ReaderOptions) -> tuple[list[str], list[str]]:
    """(label columns, feature columns): the features are every other column, in file
    order."""
    _, labels, features, _ = _layout(files, dataclasses.replace(options, labels_only=False))
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

    The rows of all files, in order, are cut into chunks of `options.chunk_rows` rows
    (none spans two files); pipeline i of P reads chunks i, i + P, i + 2P, ... in order,
    so the pipelines' rows never overlap and together are every row once. Only the
    columns asked for are read, from the row groups that hold this pipeline's chunks,
    at most `chunk_rows` rows at a time: memory is a few chunks whatever the size of a
    file or a row group. Features must be finite (a null reads as NaN) and labels valid
    for the label mode (see `checks.checked`).
    """
    num_rows, labels, features, label_dtype = _layout(files, options)
    if options.read_labels:
        check_label_width(f"Parquet file {files[0]!r}", labels, len(labels), options)

    def split(size):
        return [
            (i, start, min(start + size, num_rows[path]))
            for i, path in enumerate(files)
            for start in range(0, num_rows[path], size)
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
    own = chunks[info.pipeline_id :: info.num_pipelines]
    signature = {"file_index": tf.TensorSpec([], tf.int64), "start": tf.TensorSpec([], tf.int64)}
    if labels:
        shape = [None] if len(labels) == 1 else [None, len(labels)]
        signature["labels"] = tf.TensorSpec(shape, tf.as_dtype(label_dtype))
    if features:
        signature["features"] = tf.TensorSpec([None, len(features)], tf.float32)

    # One generator streams this pipeline's files in order, so that a row group holding
    # several of its chunks is decoded once; pyarrow decodes without the GIL, and the
    # checks run in the parallel map after it.
    def own_chunks():
        for file_index, file_chunks in itertools.groupby(own, key=lambda chunk: chunk[0]):
            for chunk in parquet_rows.read_ranges(
                files[file_index],
                [(start, stop) for _, start, stop in file_chunks],
                labels=labels,
                label_dtype=label_dtype,
                features=features,
                batch_rows=chunk_rows,
            ):
                yield {"file_index": np.int64(file_index), **chunk}

    columns = batches.Columns(features, labels)
    files_tensor = tf.constant(files)

    def checked(chunk):
        file = tf.gather(files_tensor, chunk["file_index"])
        values = chunk["labels"] if labels else chunk["features"]
        return batches.element(
            options,
            columns,
            file=file,
            file_index=chunk["file_index"],
            where=tf.strings.join(["Parquet file ", file]),
            rows=chunk["start"] + tf.range(tf.shape(values, out_type=tf.int64)[0]),
            features=chunk.get("features"),
            labels=chunk.get("labels"),
        )

    dataset = tf.data.Dataset.from_generator(own_chunks, output_signature=signature).map(
        checked, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    # Skipped-row counts stay per chunk (of one file each); other batches may span files.
    if not (options.count_skipped or options.batch_size == chunk_rows):
        dataset = dataset.rebatch(options.batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)
