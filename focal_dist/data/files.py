"""What every file reader shares: the error type, finding files, splitting them.

Shards never overlap and together cover every row once: files are split between
input pipelines when there are at least as many files as pipelines, the records of
each file otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from focal_dist.distribute import InputInfo

FILE_SOURCES = ("tfrecord", "csv", "parquet")
LABEL_MODES = ("binary", "multi_label", "sparse")


class DataError(ValueError):
    """A data file that cannot be read as configured; the message names file and column."""


def list_files(path: str | Sequence[str]) -> list[str]:
    """Files matching a path, a glob or a comma-separated list of either, sorted."""
    patterns = path.split(",") if isinstance(path, str) else list(path)
    files = []
    for pattern in patterns:
        matched = sorted(tf.io.gfile.glob(pattern.strip()))
        if not matched:
            raise DataError(f"data path {pattern.strip()!r}: no such file")
        files.extend(matched)
    for name in files:
        if tf.io.gfile.stat(name).length == 0:
            raise DataError(f"data file {name!r} is empty")
    return files


def source_from_path(path: str) -> str:
    """Guesses the source from the first file's extension."""
    first = path.split(",")[0].strip().lower()
    for suffix, source in (
        (".tfrecord", "tfrecord"),
        (".tfrecords", "tfrecord"),
        (".csv", "csv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
    ):
        if first.endswith(suffix) or suffix + "-" in first or suffix + "*" in first:
            return source
    raise DataError(
        f"cannot tell the format of {path!r} from its extension; pass the source "
        f"explicitly (one of {', '.join(FILE_SOURCES)})"
    )


def label_columns(label_column) -> list[str]:
    """`"a,b"` or `["a", "b"]` -> `["a", "b"]`."""
    if isinstance(label_column, str):
        return [c.strip() for c in label_column.split(",") if c.strip()]
    return list(label_column)


def shard_files(files: list[str], info: InputInfo) -> tuple[list[str], bool]:
    """(files of this pipeline, whether each file's records must still be sharded)."""
    if info.num_pipelines > 1 and len(files) >= info.num_pipelines:
        return files[info.pipeline_id :: info.num_pipelines], False
    return files, info.num_pipelines > 1


def check_label_width(where: str, columns: Sequence[str], width: int, label_mode, num_classes):
    """DataError unless the file's label width fits the task (C columns for multi-label)."""
    if label_mode is None:
        return
    if label_mode not in LABEL_MODES:
        raise DataError(f"label_mode must be one of {', '.join(LABEL_MODES)}; got {label_mode!r}")
    expected = num_classes if label_mode == "multi_label" else 1
    if width != expected:
        raise DataError(
            f"{where}: label {', '.join(columns)} has {width} value(s) per example, but "
            f"{label_mode} labels with {num_classes} classes need {expected}"
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
