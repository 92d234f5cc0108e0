"""CSV files with a header row: the label column(s), every other column a numeric feature.

Rows are counted from 0 after the header; messages also give the line of the file
(row r is line r + 2 when no field spans lines).
"""

from __future__ import annotations

import csv

import tensorflow as tf

from focal_dist.data import checks
from focal_dist.data.files import (
    DataError,
    check_label_width,
    label_columns,
    require_rows,
    shard_files,
)
from focal_dist.distribute import InputInfo

# What tf.strings.to_number reads: decimals, exponents, inf and nan in any case.
_NUMBER = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(?i:inf|nan)"


def _head(path: str) -> tuple[list[str], bool]:
    """(the header, whether a data row follows it)."""
    with tf.io.gfile.GFile(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        has_rows = any(row for row in reader)
    if not header:
        raise DataError(f"CSV file {path!r} has no header row")
    return [name.strip() for name in header], has_rows


def _layout(files: list[str], label_column) -> tuple[list[str], list[int], list[int]]:
    """(header, label column indices, feature column indices), the same in every file."""
    header, _ = _head(files[0])
    labels = label_columns(label_column)
    missing = [c for c in labels if c not in header]
    if missing:
        raise DataError(f"CSV file {files[0]!r} has no column {missing}; it has {header}")
    for path in files:
        other, has_rows = _head(path)
        if other != header:
            raise DataError(f"CSV file {path!r} has a header different from {files[0]!r}")
        if not has_rows:
            raise DataError(f"CSV file {path!r} has a header but no data rows")
    label_index = [header.index(c) for c in labels]
    feature_index = [i for i in range(len(header)) if i not in label_index]
    return header, label_index, feature_index


def csv_feature_names(files: list[str], label_column) -> list[str]:
    """The feature columns, in file order: every column that is not a label."""
    header, _, feature_index = _layout(files, label_column)
    return [header[i] for i in feature_index]


def _row_text(row):
    return tf.strings.join(
        ["row ", tf.strings.as_string(row), " (line ", tf.strings.as_string(row + 2), ")"]
    )


def csv_dataset(
    files: list[str],
    info: InputInfo,
    *,
    label_column="label",
    labels_only: bool = False,
    check_features: bool = False,
    batch_size: int,
    label_mode: str | None = None,
    num_classes: int | None = None,
) -> tf.data.Dataset:
    """Batches (at most `batch_size`; shorter at the end of a file) of this pipeline's rows.

    Every value is read as text first so that a non-numeric one is reported with its file,
    column and row; then features must be finite and labels valid for `label_mode`
    (see `checks.checked`).
    """
    header, label_index, feature_index = _layout(files, label_column)
    check_label_width(
        f"CSV file {files[0]!r}",
        [header[i] for i in label_index],
        len(label_index),
        label_mode,
        num_classes,
    )
    read_features = not labels_only or check_features
    selected = sorted(label_index + feature_index) if read_features else label_index
    position = {column: k for k, column in enumerate(selected)}
    label_pos = [position[i] for i in label_index]
    feature_pos = [position[i] for i in feature_index] if read_features else []
    own_files, shard_records = shard_files(files, info)
    stride, offset = (info.num_pipelines, info.pipeline_id) if shard_records else (1, 0)

    def file_dataset(path: str) -> tf.data.Dataset:
        where = f"CSV file {path}"
        # Empty fields read as "", so that the numeric test names them (not TF's
        # "Field 4 is required but missing in record!").
        records = tf.data.experimental.CsvDataset(
            path, record_defaults=[""] * len(selected), header=True, select_cols=selected
        )
        if shard_records:
            records = records.shard(stride, offset)

        def parse(batch_index, columns):
            text = tf.strings.strip(tf.stack(columns, axis=1))
            count = tf.shape(text, out_type=tf.int64)[0]
            rows = offset + (batch_index * batch_size + tf.range(count, dtype=tf.int64)) * stride
            is_number = tf.strings.regex_full_match(text, _NUMBER)
            numeric = checks.Test(
                is_number, text, [f"column {header[i]}" for i in selected], "values must be numbers"
            )
            # Non-numbers read as 0 here, so that only `numeric` fails, naming them.
            numbers = tf.strings.to_number(tf.where(is_number, text, "0"))
            label = tf.gather(numbers, label_pos, axis=1)
            label = label[:, 0] if len(label_pos) == 1 else label
            features = tf.gather(numbers, feature_pos, axis=1) if read_features else None
            result = checks.checked(
                features,
                label,
                where=where,
                rows=rows,
                feature_names=[header[i] for i in feature_index],
                label_names=[header[i] for i in label_index],
                label_mode=label_mode,
                num_classes=num_classes,
                row_text=_row_text,
                first=[numeric],
            )
            return result[1] if labels_only and read_features else result

        return (
            records.batch(batch_size)
            .enumerate()
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        )

    datasets = [file_dataset(path) for path in own_files]
    dataset = datasets[0]
    for other in datasets[1:]:
        dataset = dataset.concatenate(other)
    if shard_records:
        dataset = require_rows(dataset, "CSV", own_files, info)
    return dataset.prefetch(tf.data.AUTOTUNE)
