"""TFRecord files of tf.train.Example: a numeric label key and a numeric feature key.

Records are counted from 0 in each file; messages name the file, the key (with the
index inside a vector feature) and the record.
"""

from __future__ import annotations

import tensorflow as tf

from focal_dist.data import checks
from focal_dist.data.files import DataError, check_label_width, require_rows, shard_files
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


def tfrecord_num_features(files: list[str], feature_key: str = "features") -> int:
    """The length of `feature_key` in the first record."""
    return _kinds(files, [feature_key])[feature_key][1]


def _record_text(row):
    return tf.strings.join(["record ", tf.strings.as_string(row)])


def tfrecord_dataset(
    files: list[str],
    info: InputInfo,
    *,
    label_key: str = "label",
    feature_key: str = "features",
    labels_only: bool = False,
    check_features: bool = False,
    batch_size: int,
    label_mode: str | None = None,
    num_classes: int | None = None,
) -> tf.data.Dataset:
    """Batches of tf.train.Example with a numeric `label_key` and a numeric `feature_key`.

    The label is int64 or float; one value (binary, sparse) or C values (multi-hot).
    Features must be finite and labels valid for `label_mode` (see `checks.checked`).
    """
    read_features = not labels_only or check_features
    keys = [label_key] + ([feature_key] if read_features else [])
    kinds = _kinds(files, keys)
    label_kind, label_length = kinds[label_key]
    check_label_width(
        f"TFRecord file {files[0]!r}", [label_key], label_length, label_mode, num_classes
    )
    spec = {
        label_key: tf.io.FixedLenFeature(
            [] if label_length == 1 else [label_length],
            tf.int64 if label_kind == "int64_list" else tf.float32,
        )
    }
    feature_names = []
    if read_features:
        kind, length = kinds[feature_key]
        dtype = tf.int64 if kind == "int64_list" else tf.float32
        spec[feature_key] = tf.io.FixedLenFeature([length], dtype)
        feature_names = [f"{feature_key}[{i}]" for i in range(length)]
    label_names = (
        [label_key] if label_length == 1 else [f"{label_key}[{c}]" for c in range(label_length)]
    )
    own_files, shard_records = shard_files(files, info)
    stride, offset = (info.num_pipelines, info.pipeline_id) if shard_records else (1, 0)

    def file_dataset(path) -> tf.data.Dataset:
        where = tf.strings.join(["TFRecord file ", path])
        records = tf.data.TFRecordDataset(path)
        if shard_records:
            records = records.shard(stride, offset)

        def parse(batch_index, serialized):
            count = tf.shape(serialized, out_type=tf.int64)[0]
            rows = offset + (batch_index * batch_size + tf.range(count, dtype=tf.int64)) * stride
            parsed = tf.io.parse_example(serialized, spec)
            features = tf.cast(parsed[feature_key], tf.float32) if read_features else None
            result = checks.checked(
                features,
                parsed[label_key],
                where=where,
                rows=rows,
                feature_names=feature_names,
                label_names=label_names,
                label_mode=label_mode,
                num_classes=num_classes,
                row_text=_record_text,
                column_word="feature",
            )
            return result[1] if labels_only and read_features else result

        return (
            records.batch(batch_size)
            .enumerate()
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        )

    if len(own_files) == 1:
        # No interleave over one file: it reads 4x slower here.
        dataset = file_dataset(tf.constant(own_files[0]))
    else:
        parallel = min(4, len(own_files))
        dataset = tf.data.Dataset.from_tensor_slices(own_files).interleave(
            file_dataset, cycle_length=parallel, num_parallel_calls=parallel, deterministic=True
        )
    if shard_records:
        dataset = require_rows(dataset, "TFRecord", own_files, info)
    return dataset.prefetch(tf.data.AUTOTUNE)
