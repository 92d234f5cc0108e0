"""TFRecord files of tf.train.Example: a numeric label key and a numeric feature key.

Records are counted from 0 in each file; messages name the file, the key (with the
index inside a vector feature) and the record.
"""

from __future__ import annotations

import tensorflow as tf

from focal_dist.data.files import (
    DataError,
    ReaderOptions,
    check_label_width,
    require_rows,
    shard_file_indices,
)
from focal_dist.data.readers import batches
from focal_dist.distribute import InputInfo


def _first_example_kinds(path: str) -> dict[str, tuple[str, int]]:
    """{feature name: (kind, length)} of the first tf.train.Example in a file."""
    for record in tf.data.TFRecordDataset(path).take(1):
        example = tf.train.Example.FromString(record.numpy())
        kinds = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            kinds[name] = (kind, len(getattr(feature, kind).value))
        return kinds
    raise DataError(f"TFRecord file {path!r} holds no record")


def _kinds(files: list[str], keys: list[str]) -> dict[str, tuple[str, int]]:
    kinds = _first_example_kinds(files[0])
    for key in keys:
        if key not in kinds:
            raise DataError(
                f"TFRecord file {files[0]!r} has no feature {key!r}; it has {sorted(kinds)}"
            )
        if kinds[key][0] == "bytes_list":
            raise DataError(f"TFRecord file {files[0]!r}: feature {key!r} is bytes, not numeric")
    for path in files[1:]:
        _first_example_kinds(path)  # every file holds a record
    return kinds


def feature_kind(files: list[str], key: str) -> tuple[str, int]:
    """(kind, length) of feature `key` in the records: "float_list" or "int64_list"."""
    return _kinds(files, [key])[key]


def _label_key(options: ReaderOptions) -> str:
    if len(options.label_column) != 1:
        raise DataError(
            f"TFRecord labels are one feature key (holding C values for multi-label); "
            f"label_column names {len(options.label_column)}: {list(options.label_column)}"
        )
    return options.label_column[0]


def _label_names(key: str, length: int) -> list[str]:
    return [key] if length == 1 else [f"{key}[{c}]" for c in range(length)]


def column_names(files: list[str], options: ReaderOptions) -> tuple[list[str], list[str]]:
    """(label names, feature names): the label key (`key[c]` for C values) and
    `<feature_column>[i]` for each value of the feature vector in the first record."""
    label_key, feature_key = _label_key(options), options.feature_column
    kinds = _kinds(files, [label_key, feature_key])
    features = [f"{feature_key}[{i}]" for i in range(kinds[feature_key][1])]
    return _label_names(label_key, kinds[label_key][1]), features


def feature_names(files: list[str], options: ReaderOptions) -> list[str]:
    """`<feature_column>[i]` for each value of the feature vector in the first record."""
    key = options.feature_column
    return [f"{key}[{i}]" for i in range(_kinds(files, [key])[key][1])]


def features_phrase(options: ReaderOptions) -> str:
    """What the feature count counts, for messages."""
    return f"values in feature {options.feature_column!r}"


def _record_text(row):
    return tf.strings.join(["record ", tf.strings.as_string(row)])


def read(files: list[str], info: InputInfo, options: ReaderOptions) -> tf.data.Dataset:
    """Batches of tf.train.Example with a numeric label key and a numeric feature key, as
    `options` asks (see `ReaderOptions`).

    The label is int64 or float; one value (binary, sparse) or C values (multi-hot).
    Features must be finite and labels valid for the label mode (see `checks.checked`).
    """
    label_key, feature_key = _label_key(options), options.feature_column
    keys = ([label_key] if options.read_labels else []) + (
        [feature_key] if options.read_features else []
    )
    kinds = _kinds(files, keys)
    spec, label_names, names = {}, [], []
    if options.read_labels:
        label_kind, label_length = kinds[label_key]
        check_label_width(f"TFRecord file {files[0]!r}", [label_key], label_length, options)
        spec[label_key] = tf.io.FixedLenFeature(
            [] if label_length == 1 else [label_length],
            tf.int64 if label_kind == "int64_list" else tf.float32,
        )
        label_names = _label_names(label_key, label_length)
    if options.read_features:
        kind, length = kinds[feature_key]
        dtype = tf.int64 if kind == "int64_list" else tf.float32
        spec[feature_key] = tf.io.FixedLenFeature([length], dtype)
        names = [f"{feature_key}[{i}]" for i in range(length)]
    columns = batches.Columns(names, label_names, word="feature", row_text=_record_text)
    batch_size = options.batch_size
    own, shard_records = shard_file_indices(len(files), info)
    own_files = [files[i] for i in own]
    stride, offset = (info.num_pipelines, info.pipeline_id) if shard_records else (1, 0)

    def file_dataset(file_index, path) -> tf.data.Dataset:
        records = tf.data.TFRecordDataset(path)
        if shard_records:
            records = records.shard(stride, offset)

        def parse(batch_index, serialized):
            count = tf.shape(serialized, out_type=tf.int64)[0]
            rows = offset + (batch_index * batch_size + tf.range(count, dtype=tf.int64)) * stride
            parsed = tf.io.parse_example(serialized, spec)
            return batches.element(
                options,
                columns,
                file=path,
                file_index=file_index,
                where=tf.strings.join(["TFRecord file ", path]),
                rows=rows,
                features=tf.cast(parsed[feature_key], tf.float32)
                if options.read_features
                else None,
                labels=parsed[label_key] if options.read_labels else None,
            )

        return (
            records.batch(batch_size)
            .enumerate()
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        )

    if len(own_files) == 1:
        # No interleave over one file: it reads 4x slower here.
        dataset = file_dataset(own[0], tf.constant(own_files[0]))
    else:
        parallel = min(4, len(own_files))
        paths = tf.data.Dataset.from_tensor_slices((tf.constant(own, tf.int64), own_files))
        dataset = paths.interleave(
            file_dataset, cycle_length=parallel, num_parallel_calls=parallel, deterministic=True
        )
    if shard_records and not options.prediction_rows:
        dataset = require_rows(dataset, "TFRecord", own_files, info)
    return dataset.prefetch(tf.data.AUTOTUNE)
