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
    ReaderOptions,
    check_label_width,
    require_rows,
    shard_file_indices,
)
from focal_dist.data.readers import batches
from focal_dist.data.readers.csv_fields import check_field_counts
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
    # A UTF-8 byte-order mark (Excel's "CSV UTF-8") is not part of the first name.
    header[0] = header[0].lstrip("\ufeff")
    return [name.strip() for name in header], has_rows


def _layout(files: list[str], options: ReaderOptions) -> tuple[list[str], list[int], list[int]]:
    """(header, label column indices, feature column indices), the same in every file.

    Prediction rows need no label column: those present are left out of the features.
    """
    header, _ = _head(files[0])
    labels = [c for c in options.label_column if c in header or options.read_labels]
    missing = [c for c in labels if c not in header]
    if missing:
        raise DataError(f"CSV file {files[0]!r} has no column {missing}; it has {header}")
    for path in files:
        other, has_rows = _head(path)
        if other != header:
            raise DataError(f"CSV file {path!r} has a header different from {files[0]!r}")
        if not has_rows:
            raise DataError(f"CSV file {path!r} has a header but no data rows")
        check_field_counts(path)
    label_index = [header.index(c) for c in labels]
    feature_index = [i for i in range(len(header)) if i not in label_index]
    return header, label_index, feature_index


def column_names(files: list[str], options: ReaderOptions) -> tuple[list[str], list[str]]:
    """(label columns, feature columns): the features are every other column, in file
    order."""
    header, label_index, feature_index = _layout(files, options)
    return [header[i] for i in label_index], [header[i] for i in feature_index]


def feature_names(files: list[str], options: ReaderOptions) -> list[str]:
    """The feature columns, in file order: every column that is not a label."""
    return column_names(files, options)[1]


def features_phrase(options: ReaderOptions) -> str:
    """What the feature count counts, for messages."""
    return f"feature columns (every column but {list(options.label_column)})"


def _row_text(row):
    return tf.strings.join(
        ["row ", tf.strings.as_string(row), " (line ", tf.strings.as_string(row + 2), ")"]
    )


def read(files: list[str], info: InputInfo, options: ReaderOptions) -> tf.data.Dataset:
    """Batches (at most `options.batch_size`; shorter at the end of a file) of this
    pipeline's rows, as `options` asks (see `ReaderOptions`).

    Every value is read as text first so that a non-numeric one is reported with its file,
    column and row; then features must be finite and labels valid for the label mode
    (see `checks.checked`).
    """
    header, label_index, feature_index = _layout(files, options)
    label_names = [header[i] for i in label_index]
    check_label_width(f"CSV file {files[0]!r}", label_names, len(label_index), options)
    label_index = label_index if options.read_labels else []
    feature_index = feature_index if options.read_features else []
    selected = sorted(label_index + feature_index)
    position = {column: k for k, column in enumerate(selected)}
    label_pos = [position[i] for i in label_index]
    feature_pos = [position[i] for i in feature_index]
    columns = batches.Columns(
        features=[header[i] for i in feature_index], labels=label_names, row_text=_row_text
    )
    batch_size = options.batch_size
    own, shard_records = shard_file_indices(len(files), info)
    stride, offset = (info.num_pipelines, info.pipeline_id) if shard_records else (1, 0)

    def file_dataset(file_index: int) -> tf.data.Dataset:
        path = files[file_index]
        # Empty fields read as "", so that the numeric test names them (not TF's
        # "Field 4 is required but missing in record!").
        records = tf.data.experimental.CsvDataset(
            path, record_defaults=[""] * len(selected), header=True, select_cols=selected
        )
        if shard_records:
            records = records.shard(stride, offset)

        def parse(batch_index, columns_text):
            text = tf.strings.strip(tf.stack(columns_text, axis=1))
            count = tf.shape(text, out_type=tf.int64)[0]
            rows = offset + (batch_index * batch_size + tf.range(count, dtype=tf.int64)) * stride
            is_number = tf.strings.regex_full_match(text, _NUMBER)
            numeric = checks.Test(
                is_number, text, [f"column {header[i]}" for i in selected], "values must be numbers"
            )
            # Non-numbers read as 0 here, so that only `numeric` fails, naming them.
            numbers = tf.strings.to_number(tf.where(is_number, text, "0"))
            label = None
            if options.read_labels:
                label = tf.gather(numbers, label_pos, axis=1)
                label = label[:, 0] if len(label_pos) == 1 else label
            features = tf.gather(numbers, feature_pos, axis=1) if options.read_features else None
            return batches.element(
                options,
                columns,
                file=path,
                file_index=file_index,
                where=f"CSV file {path}",
                rows=rows,
                features=features,
                labels=label,
                first=[numeric],
            )

        return (
            records.batch(batch_size)
            .enumerate()
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        )

    datasets = [file_dataset(i) for i in own]
    dataset = datasets[0]
    for other in datasets[1:]:
        dataset = dataset.concatenate(other)
    if shard_records and not options.prediction_rows:
        dataset = require_rows(dataset, "CSV", [files[i] for i in own], info)
    return dataset.prefetch(tf.data.AUTOTUNE)
