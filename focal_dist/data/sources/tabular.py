"""What the three table sources (CSV, Parquet, TFRecord) share: how each split is read.

* training: each pipeline reads its own files or records (no N-fold I/O), shuffles and
  batches them (`pipeline.shard_then_batch`); a resumed run skips this pipeline's share
  of the batches already seen;
* eval and calibration: every pipeline reads the whole split and keeps its slices of
  each global batch (`pipeline.split_global_batches`), so each example counts once and
  every pipeline runs the same number of steps;
* the label pass reads this pipeline's shard of the training files, labels and features,
  so that every bad value is found before training.

A table source differs from another only in its reader (data/readers/).
"""

from __future__ import annotations

import dataclasses
import functools
from types import ModuleType

import tensorflow as tf

from focal_dist.data import pipeline, skipped_rows
from focal_dist.data.files import ReaderOptions, list_files
from focal_dist.data.readers.tables import resolve_num_features
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.data.skipped_rows import SkippedRows
from focal_dist.data.sources.base import Source, check_split
from focal_dist.distribute import InputInfo

# Rows per batch read; the training input unbatches them and batches per replica.
_READ_BATCH = 4096


class TableSource(Source):
    """Table files at `path` (train), `eval_path` and `calibration_path`."""

    reader: ModuleType  # a module of data/readers/: read, feature_names, features_phrase
    label_pass_checks_values = True
    config_fields = (
        "source", "path", "eval_path", "calibration_path", "label_column", "num_features",
        "shuffle_buffer", "non_finite",
    )  # fmt: skip

    def __init__(
        self,
        *,
        path: str,
        eval_path: str = "",
        calibration_path: str = "",
        options: ReaderOptions,
        num_features: int | None = 0,
        shuffle_buffer: int = 0,
    ):
        if not path:
            raise ValueError(f"data.path is required for data.source={self.name!r}")
        self.paths = {"train": path, "eval": eval_path or path, "calibration": calibration_path}
        self.options = options
        self.label_mode = options.label_mode
        self.num_classes = options.num_classes
        self.configured_num_features = num_features
        self.shuffle_buffer = shuffle_buffer

    @classmethod
    def from_config(cls, data, *, label_mode: str, num_classes: int) -> TableSource:
        """The source of `config.data` (path, eval_path, calibration_path, label_column,
        feature_column, num_features, shuffle_buffer, non_finite)."""
        return cls(
            path=data.path,
            eval_path=data.eval_path,
            calibration_path=data.calibration_path,
            options=ReaderOptions(
                label_column=data.label_column,
                feature_column=data.feature_column,
                batch_size=_READ_BATCH,
                label_mode=label_mode,
                num_classes=num_classes,
                non_finite=data.non_finite,
            ),
            num_features=data.num_features,
            shuffle_buffer=data.shuffle_buffer,
        )

    @functools.cached_property
    def input_shape(self) -> tuple[int, ...]:
        # data.num_features 0 means "read it from the files"; others must match.
        return (
            resolve_num_features(
                self.name,
                self.paths["train"],
                self.configured_num_features,
                label_column=self.options.label_column,
                feature_column=self.options.feature_column,
            ),
        )

    def serving_inputs(self) -> dict:
        # Requests name the data's own columns (CSV, Parquet) or feature key (TFRecord).
        return {
            "column_names": self.reader.feature_names(list_files(self.paths["train"]), self.options)
        }

    def read(self, path: str, info: InputInfo, **options) -> tf.data.Dataset:
        """This pipeline's shard of `path`, read with this source's options and `options`."""
        options = dataclasses.replace(self.options, **options)
        return self.reader.read(list_files(path), info, options)

    def train_batches(self, info: InputInfo) -> tf.data.Dataset:
        return pipeline.shard_then_batch(
            self.read(self.paths["train"], info).unbatch(),
            info,
            shuffle_buffer=self.shuffle_buffer,
            seed=info.seed,
            skip_batches=info.skip_global_batches * info.replicas_per_pipeline,
            finish=self.finish,
        )

    def split_batches(self, info: InputInfo, split: str) -> tf.data.Dataset | None:
        check_split(split)
        path = self.paths[split]
        if not path:
            return None
        # Every pipeline reads the whole split (one pipeline's view) and keeps its slices.
        whole = self.read(path, InputInfo(0, 1, info.per_replica_batch_size))
        return pipeline.split_global_batches(
            whole.unbatch(),
            info,
            global_batch_size=info.global_batch_size,
            repeat=False,
            finish=self.finish,
        )

    def label_batches(self, info: InputInfo) -> tf.data.Dataset:
        return self.read(self.paths["train"], info, labels_only=True, check_features=True)

    def skipped_rows(self, info: InputInfo, split: str = "train") -> SkippedRows | None:
        if split != "train":
            check_split(split)
        path = self.paths[split]
        if not self.options.skip or not path:
            return None
        files = list_files(path)
        labels, features = self.reader.column_names(files, self.options)
        counts = self.reader.read(
            files, info, dataclasses.replace(self.options, count_skipped=True)
        )
        return skipped_rows.count(counts, files, [*labels, *features])

    def prediction_files(self, path: str) -> list[str]:
        return list_files(path)

    def prediction_batches(
        self, path: str, info: InputInfo, batch_size: int, scored: ScoredRows | None = None
    ) -> tf.data.Dataset:
        # A table's rows are read in order: scored ones are read again, not scored.
        batches = self.read(path, info, prediction_rows=True, batch_size=batch_size)
        return (scored or ScoredRows()).drop_scored(batches)
