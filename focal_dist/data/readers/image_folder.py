"""`data.source = "image_folder"`: one subfolder per class, as
`keras.utils.image_dataset_from_directory` reads them.

    path/
      benign/    a.png  b.jpg ...
      malignant/ c.png ...

Class names are the subfolder names, sorted; class k is the k-th name (for a binary
task the first is the negative class, the second the positive). Labels come from the
listing, so counting them never opens an image.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from absl import logging

from focal_dist.data.files import DataError, list_files
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.distribute import InputInfo

# The formats tf.io.decode_image reads (Keras's image_dataset_from_directory list).
EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def list_image_folder(directory: str) -> tuple[list[str], list[str], np.ndarray]:
    """(sorted class names, image paths, int64 labels), class by class, files sorted."""
    if not tf.io.gfile.isdir(directory):
        raise DataError(f"image_folder data.path {directory!r} is not a directory")
    class_names = sorted(
        name.rstrip("/")
        for name in tf.io.gfile.listdir(directory)
        if tf.io.gfile.isdir(os.path.join(directory, name))
    )
    if not class_names:
        raise DataError(
            f"image_folder {directory!r} has no class subfolders; expected one folder per "
            "class holding its images"
        )
    paths, labels = [], []
    for index, name in enumerate(class_names):
        folder = os.path.join(directory, name)
        files = sorted(f for f in tf.io.gfile.listdir(folder) if f.lower().endswith(EXTENSIONS))
        paths += [os.path.join(folder, f) for f in files]
        labels += [index] * len(files)
    if not paths:
        raise DataError(
            f"image_folder {directory!r}: no {', '.join(EXTENSIONS)} files in its class "
            f"folders {class_names}"
        )
    return class_names, paths, np.asarray(labels, np.int64)


# The config's task.name for each label mode, for messages a CLI user can act on.
_TASK_NAMES = {"sparse": "multiclass", "categorical": "multiclass"}


class ImageFolder:
    """The images and labels of a class-per-subfolder directory, sharded per pipeline."""

    def __init__(self, directory: str, *, label_mode: str, num_classes: int):
        self.directory = directory
        self.class_names, self.paths, self.labels = list_image_folder(directory)
        found = len(self.class_names)
        if label_mode == "multi_label":
            raise DataError(
                f"image_folder {directory!r} gives each image one class; multi_label tasks "
                "need data.source=image_tfrecord with a list of labels per image"
            )
        expected = 2 if label_mode == "binary" else num_classes
        if found != expected:
            raise DataError(
                f"image_folder {directory!r} has {found} class folders {self.class_names}, "
                f"but task.name={_TASK_NAMES.get(label_mode, label_mode)!r} with "
                f"task.num_classes={num_classes} needs {expected}"
            )
        counts = np.bincount(self.labels, minlength=found)
        logging.info(
            "image_folder %s: %d images; classes %s",
            directory,
            len(self.paths),
            ", ".join(
                f"{k}={n} ({c})"
                for k, (n, c) in enumerate(zip(self.class_names, counts, strict=True))
            ),
        )

    def _shard(self, info: InputInfo) -> tuple[list[str], np.ndarray]:
        # Every P-th file of the class-major list: each pipeline gets every class.
        paths = self.paths[info.pipeline_id :: info.num_pipelines]
        if not paths:
            raise DataError(
                f"image_folder {self.directory!r} has {len(self.paths)} images, fewer than "
                f"the {info.num_pipelines} input pipelines"
            )
        return paths, self.labels[info.pipeline_id :: info.num_pipelines]

    def records(self, info: InputInfo) -> tf.data.Dataset:
        """This pipeline's `(path, label)` pairs, unbatched; `load` reads the bytes."""
        return tf.data.Dataset.from_tensor_slices(self._shard(info))

    def indexed_paths(self, info: InputInfo) -> tuple[list[int], tf.data.Dataset]:
        """(indices in `paths` of this pipeline's images, their `(index, path)` records),
        for the pass before training."""
        paths, _ = self._shard(info)
        indices = list(range(len(self.paths)))[info.pipeline_id :: info.num_pipelines]
        return indices, tf.data.Dataset.from_tensor_slices(
            (tf.constant(indices, tf.int64), tf.constant(paths, tf.string))
        )

    def drop(self, files) -> None:
        """Leaves `files` out of the listing, before any pipeline takes its shard of it."""
        keep = [path not in files for path in self.paths]
        if not any(keep):
            raise DataError(f"image_folder {self.directory!r}: no image left to train on")
        self.paths = [path for path, kept in zip(self.paths, keep, strict=True) if kept]
        self.labels = self.labels[np.asarray(keep)]

    @staticmethod
    def parse(record: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """`(path, label)`: a listing's record is already split."""
        return record

    examples = records

    def labels_dataset(self, info: InputInfo, batch_size: int) -> tf.data.Dataset:
        """This pipeline's labels in batches, from the listing alone."""
        return tf.data.Dataset.from_tensor_slices(self._shard(info)[1]).batch(batch_size)

    @staticmethod
    def load(path: tf.Tensor) -> tf.Tensor:
        return tf.io.read_file(path)

    def describe(self, reference: tf.Tensor):
        return ["image file", reference]


def image_files(path: str) -> list[str]:
    """Every image under a directory (sorted, at any depth), or the files of a glob
    (batch prediction's input: a 0-byte file is listed, and fails as a bad image)."""
    if not tf.io.gfile.isdir(path):
        return list_files(path, allow_empty=True)
    found = []
    for folder, _, names in tf.io.gfile.walk(path):
        found += [os.path.join(folder, n) for n in names if n.lower().endswith(EXTENSIONS)]
    if not found:
        raise DataError(f"image folder {path!r} holds no {', '.join(EXTENSIONS)} file")
    return sorted(found)


def prediction_records(
    path: str, info: InputInfo, scored: ScoredRows | None = None
) -> tf.data.Dataset:
    """This pipeline's `(file, row, encoded image)` for batch prediction: every image of
    `path` (a folder, searched at any depth with or without class folders, or a glob)
    once over all pipelines, each its own file (row 0), except those `scored` already
    (never read). A pipeline may get none."""
    files = image_files(path)[info.pipeline_id :: info.num_pipelines]
    if scored:
        files = scored.unscored_files(files)
    return tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string)).map(
        lambda file: (file, tf.constant(0, tf.int64), tf.io.read_file(file))
    )
