"""The one interface a task reads data through: `Source`.

A source is one data set as configured (`config.data`): its training split, its
held-out splits ("eval", "calibration") and a label pass for the class-weight
histogram, each as this input pipeline's batches for an `InputInfo`. The task composes
a source and never asks which kind it is; how each split is divided between pipelines
(and why it stays exact) is the source's business, with data/pipeline.py's splits.
"""

from __future__ import annotations

import abc

import tensorflow as tf

from focal_dist.data.bad_files import FileCheck
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.data.skipped_rows import SkippedRows
from focal_dist.distribute import InputInfo

SPLITS = ("eval", "calibration")


def model_inputs(label_mode: str):
    """(features, labels) -> (float32 features, labels in `label_mode`'s layout):
    binary float32 [B, 1], multi_label float32 [B, C], sparse int64 [B]."""

    def finish(features, labels):
        if label_mode == "binary":
            labels = tf.reshape(tf.cast(labels, tf.float32), [-1, 1])
        elif label_mode == "multi_label":
            labels = tf.cast(labels, tf.float32)
        else:
            labels = tf.cast(labels, tf.int64)
        return tf.cast(features, tf.float32), labels

    return finish


class Source(abc.ABC):
    """One data set as a task reads it: this pipeline's batches of each split and its labels.

    Features come out float32 ([B, F] tabular, [B, H, W, C] images in [0, 1]); labels in the
    layout of `label_mode`: binary float32 [B, 1], multi_label float32 [B, C], sparse int64 [B].

    Attributes:
      name: the config's `data.source`.
      label_mode: "binary", "multi_label" or "sparse" (data/label_modes.py).
      num_classes: outputs C (1 for binary).
      label_pass_checks_values: `label_batches` also checks every feature value.
    """

    name: str
    label_mode: str
    num_classes: int
    # The `config.data` fields this source reads ("synthetic": that whole section); the
    # run's TensorBoard hparams show only these.
    config_fields: tuple[str, ...] = ("source",)
    # The label pass also checks every value (file sources): a run makes it even when it
    # needs no class weights, so that bad data stops it before its first checkpoint.
    label_pass_checks_values: bool = False

    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """One example's features, no batch axis: (F,) or (H, W, C)."""

    @property
    def class_names(self) -> list[str] | None:
        """The classes' names when the data names them (image folders), else None."""
        return None

    @property
    def finish(self):
        """The map that puts a batch in the model's layout (see `model_inputs`)."""
        return model_inputs(self.label_mode)

    @abc.abstractmethod
    def train_batches(self, info: InputInfo) -> tf.data.Dataset:
        """Repeated per-replica batches of `info.per_replica_batch_size` rows (a short or
        empty batch is possible), shuffled with `info.seed`, starting
        `info.skip_global_batches` global batches into the stream, so that a resumed run
        reads what the first run would have read next."""

    def split_batches(self, info: InputInfo, split: str) -> tf.data.Dataset | None:
        """Finite per-replica batches of a held-out split, "eval" or "calibration": every
        example once over all replicas, the same number of batches on every pipeline;
        None when the split is not configured."""
        check_split(split)
        return None

    @abc.abstractmethod
    def label_batches(self, info: InputInfo) -> tf.data.Dataset:
        """This pipeline's shard of the training labels in batches, for the class-weight
        histogram: every training example once over all pipelines. File sources also
        check every feature value in this pass, so bad data stops a run before its first
        checkpoint."""

    def serving_inputs(self) -> dict:
        """How a served request may carry one example, beside the features tensor itself:
        {"vector_key": key, "num_features": F, "dtype": "float32" | "int64"} (one
        tf.train.Example feature holding F values), {"column_names": [...]} (one feature
        per column), {"image": ImageOptions} (encoded image bytes), or {} (tensor only)."""
        return {}

    def skipped_rows(self, info: InputInfo, split: str = "train") -> SkippedRows | None:
        """What `data.non_finite = "skip"` drops from this pipeline's shard of a split
        ("train", "eval" or "calibration"), per file and column; None when the source
        drops nothing (non_finite = "error", or no files) or the split is not configured.
        One pass over the shard; `SkippedRows.summed` adds the pipelines' counts."""
        del info, split
        return None

    def check_files(self, info: InputInfo) -> FileCheck | None:
        """The pass before training over this pipeline's shard of every split, for sources
        of image files: every image read once and decoded as training decodes it, the
        ones that cannot be marked (data/bad_files.py); a segmentation source also checks
        every mask and counts the training pixels in it. None: no image files."""
        del info
        return None

    def drop_files(self, files) -> None:
        """Leaves the image files `files` (what `check_files` marked, on any worker) out of
        every split, before any pipeline takes its shard: the same on every worker."""
        raise ValueError(f"data.source={self.name!r} has no image files to leave out ({files})")

    def prediction_files(self, path: str) -> list[str]:
        """The files `prediction_batches` reads at `path`, sorted: what a prediction's
        input is (its output records them, and a resumed one must read the same)."""
        del path
        raise ValueError(f"data.source={self.name!r} has no files to predict on")

    def prediction_batches(
        self, path: str, info: InputInfo, batch_size: int, scored: ScoredRows | None = None
    ) -> tf.data.Dataset:
        """This pipeline's batches of `{"file": string [B], "row": int64 [B] (index within
        its file), "features": float32 [B, ...]}` of the files at `path`, for batch
        prediction: over all pipelines every row of every file exactly once, except the
        rows `scored` by an earlier attempt. Labels are not required. Image sources add
        `"error"` (data/unreadable.py): "" or why the image could not be decoded (its
        features are then zero). Sources without files have none."""
        del path, info, batch_size, scored
        raise ValueError(f"data.source={self.name!r} has no files to predict on")


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
