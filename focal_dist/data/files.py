"""What every file reader shares: the error type, its options, finding files, splitting them.

Shards never overlap and together cover every row once: files are split between
input pipelines when there are at least as many files as pipelines, the records of
each file otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from focal_dist.data.label_modes import LABEL_MODES
from focal_dist.distribute import InputInfo

# data.non_finite: stop at a bad row (naming it), or drop it and count it.
NON_FINITE = ("error", "skip")

# Suffix -> reader (data/readers/tables.py), for `source_from_path`.
_SUFFIXES = (
    (".tfrecord", "tfrecord"),
    (".tfrecords", "tfrecord"),
    (".csv", "csv"),
    (".parquet", "parquet"),
    (".pq", "parquet"),
)


class DataError(ValueError):
    """A data file that cannot be read as configured; the message names file and column."""


@dataclasses.dataclass(frozen=True)
class ReaderOptions:
    """How a table reader (CSV, Parquet, TFRecord) reads its files.

    A reader yields batches of at most `batch_size` rows of one of three kinds:
    `(features, labels)`; `labels` alone with `labels_only`; or, with `prediction_rows`,
    `{"file": string [B], "row": int64 [B], "features": float32 [B, F]}` for batch
    prediction, where label columns need not exist and are never read.

    Attributes:
      label_column: the label column, or one per output for multi-label (a list or
        "a,b,c"); TFRecord: the one feature key holding the label(s).
      feature_column: TFRecord only: the key of the feature vector. CSV and Parquet
        features are every column that is not a label.
      batch_size: rows per batch (shorter at the end of a file or shard).
      labels_only: yield labels alone (Parquet then reads only the label columns).
      check_features: with `labels_only`, still read and check every feature value, so
        that a label pass before training finds bad data before any checkpoint.
      prediction_rows: yield prediction rows (see above).
      label_mode: one of LABEL_MODES (with `num_classes`): labels outside the task's
        range are refused naming file, column and row. None: labels need only be finite.
      num_classes: C (1 for binary).
      chunk_rows: Parquet only: rows per read, the unit of sharding between pipelines.
      non_finite: "error" (a bad row stops the reader, naming file, column and row) or
        "skip": rows with a NaN or inf feature or an invalid label are dropped, in every
        kind of pass alike (features are then always read, so a label pass drops the
        rows training drops). A value that is not a number (CSV) is still an error.
        Prediction rows are always checked with "error".
      count_skipped: with "skip": yield, per batch read, `{"file_index": int64 (in the
        files given), "skipped": int64 [C + K + 1]}`, the bad values of each label and
        feature column and the rows dropped (data/skipped_rows.py sums them).
    """

    label_column: str | Sequence[str] = "label"
    feature_column: str = "features"
    batch_size: int = 4096
    labels_only: bool = False
    check_features: bool = False
    prediction_rows: bool = False
    label_mode: str | None = None
    num_classes: int | None = None
    chunk_rows: int = 65536
    non_finite: str = "error"
    count_skipped: bool = False

    def __post_init__(self):
        object.__setattr__(self, "label_column", tuple(label_columns(self.label_column)))
        if not self.label_column:
            raise DataError("label_column must name at least one column; got none")
        if self.label_mode is not None and self.label_mode not in LABEL_MODES:
            raise DataError(
                f"label_mode must be one of {', '.join(LABEL_MODES)}; got {self.label_mode!r}"
            )
        if self.label_mode is not None and not self.num_classes:
            raise DataError(
                f"label_mode {self.label_mode!r} needs num_classes; got {self.num_classes!r}"
            )
        for name in ("batch_size", "chunk_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataError(f"{name} must be an integer >= 1; got {value!r}")
        if self.labels_only and self.prediction_rows:
            raise DataError("labels_only and prediction_rows exclude each other; got both")
        if self.non_finite not in NON_FINITE:
            raise DataError(
                f"non_finite must be one of {', '.join(NON_FINITE)}; got {self.non_finite!r}"
            )
        if self.count_skipped and (self.non_finite != "skip" or self.prediction_rows):
            raise DataError("count_skipped counts the rows non_finite='skip' drops in training")

    @property
    def skip(self) -> bool:
        return self.non_finite == "skip" and not self.prediction_rows

    @property
    def read_features(self) -> bool:
        # Skipping reads the features in every pass, so that every pass drops the same rows.
        return not self.labels_only or self.check_features or self.skip

    @property
    def read_labels(self) -> bool:
        return not self.prediction_rows


def list_files(path: str | Sequence[str], *, allow_empty: bool = False) -> list[str]:
    """Files matching a path, a glob or a comma-separated list of either, sorted; a file
    of 0 bytes is refused unless `allow_empty` (batch prediction lists it as failed)."""
    patterns = path.split(",") if isinstance(path, str) else list(path)
    files = []
    for pattern in patterns:
        matched = sorted(tf.io.gfile.glob(pattern.strip()))
        if not matched:
            raise DataError(f"data path {pattern.strip()!r}: no such file")
        files.extend(matched)
    for name in [] if allow_empty else files:
        if tf.io.gfile.stat(name).length == 0:
            raise DataError(f"data file {name!r} is empty")
    return files


def source_from_path(path: str) -> str:
    """Guesses the source from the first file's extension."""
    first = path.split(",")[0].strip().lower()
    for suffix, source in _SUFFIXES:
        if first.endswith(suffix) or suffix + "-" in first or suffix + "*" in first:
            return source
    known = ", ".join(dict.fromkeys(source for _, source in _SUFFIXES))
    raise DataError(
        f"cannot tell the format of {path!r} from its extension; pass the source "
        f"explicitly (one of {known})"
    )


def label_columns(label_column) -> list[str]:
    """`"a,b"` or `["a", "b"]` -> `["a", "b"]`."""
    if isinstance(label_column, str):
        return [c.strip() for c in label_column.split(",") if c.strip()]
    return list(label_column)


def shard_file_indices(num_files: int, info: InputInfo) -> tuple[list[int], bool]:
    """(indices of this pipeline's files, whether each file's records must still be
    sharded)."""
    indices = list(range(num_files))
    if info.num_pipelines > 1 and num_files >= info.num_pipelines:
        return indices[info.pipeline_id :: info.num_pipelines], False
    return indices, info.num_pipelines > 1


def shard_files(files: list[str], info: InputInfo) -> tuple[list[str], bool]:
    """(files of this pipeline, whether each file's records must still be sharded)."""
    indices, shard_records = shard_file_indices(len(files), info)
    return [files[i] for i in indices], shard_records


def named_records(files: list[str], info: InputInfo):
    """(`TFRecord file F record i`, serialized record) of each record of this pipeline's
    share of the TFRecord `files` (`shard_files`), eagerly, in file order: what names
    the record a pass over them failed on."""
    own_files, shard_records = shard_files(files, info)
    for file in own_files:
        records = tf.data.TFRecordDataset(file).enumerate()
        if shard_records:
            records = records.shard(info.num_pipelines, info.pipeline_id)
        for index, record in records:
            yield f"TFRecord file {file} record {int(index)}", record


def check_label_width(where: str, columns: Sequence[str], width: int, options: ReaderOptions):
    """DataError unless the file's label width fits the task (C columns for multi-label)."""
    if options.label_mode is None or not options.read_labels:
        return
    expected = options.num_classes if options.label_mode == "multi_label" else 1
    if width != expected:
        raise DataError(
            f"{where}: label {', '.join(columns)} has {width} value(s) per example, but "
            f"{options.label_mode} labels with {options.num_classes} classes need {expected}"
        )


def require_rows(dataset: tf.data.Dataset, kind: str, files, info: InputInfo):
    """`dataset`, or a DataError naming the files if this pipeline's shard is empty.

    Checked eagerly by reading one batch, only where records are split between pipelines.

    Without this an empty shard ends the training input at once and the run stops with
    TensorFlow's `End of sequence`, naming no file.
    """
    if tf.executing_eagerly():
        for _ in dataset.take(1):
            return dataset
        raise DataError(
            f"{kind} file(s) {list(files)} hold fewer rows than the {info.num_pipelines} "
            f"input pipelines: pipeline {info.pipeline_id} would get none"
        )
    return dataset
