"""Where images and their masks are read from: a folder pair, or TFRecords.

* `segmentation_folder`: `path/images/` and `path/masks/`, paired by file stem
  (`images/case_07.jpg` with `masks/case_07.png`); every image needs its mask and every
  mask its image.
* `segmentation_tfrecord`: tf.train.Example records with TF Model Garden's keys,
  `image/encoded` and `image/segmentation/class/encoded` (both configurable).

Both readers give this pipeline's raw records (`records`; `indexed_records` with each
image's index for the pass before training), split into `(image bytes, mask bytes)` by
`load` (`load_image`, `load_mask`: one of them) and named by `describe`: pairs are
split between pipelines every P-th pair, TFRecord files between pipelines (their
records when there are fewer files than pipelines), so every example is in exactly one
shard. `scan` walks a shard eagerly, naming each example, to find the one a failed pass
could not name.

Batch prediction reads images without masks (`folder_prediction_records`,
`tfrecord_prediction_records`): the image sources' records, each with the name its
mask is written under.
"""

from __future__ import annotations

import os

import tensorflow as tf

from focal_dist.data.files import DataError, list_files, named_records, shard_files
from focal_dist.data.readers import image_tfrecord
from focal_dist.data.readers.image_folder import EXTENSIONS, image_files
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.distribute import InputInfo


def _stems(folder: str, extensions) -> dict[str, str]:
    if not tf.io.gfile.isdir(folder):
        raise DataError(f"segmentation_folder: {folder!r} is not a directory")
    stems: dict[str, str] = {}
    for name in sorted(tf.io.gfile.listdir(folder)):
        stem, extension = os.path.splitext(name)
        if extension.lower() not in extensions:
            continue
        if stem in stems:
            raise DataError(
                f"segmentation_folder {folder!r}: {stems[stem]!r} and {name!r} share the stem "
                f"{stem!r}; images and masks are paired by stem"
            )
        stems[stem] = name
    return stems


class SegmentationFolder:
    """The (image, mask) pairs of `directory/images` and `directory/masks`."""

    drops_files = True  # an image that cannot be decoded can be left out (data.bad_files)

    def __init__(self, directory: str):
        self.directory = directory
        image_dir, mask_dir = (os.path.join(directory, n) for n in ("images", "masks"))
        found_images, found_masks = _stems(image_dir, EXTENSIONS), _stems(mask_dir, (".png",))
        for what, have, lack in (
            ("images without a mask", found_images, found_masks),
            ("masks without an image", found_masks, found_images),
        ):
            missing = sorted(set(have) - set(lack))
            if missing:
                raise DataError(
                    f"segmentation_folder {directory!r}: {len(missing)} {what} (paired by "
                    f"file stem): {', '.join(have[s] for s in missing[:5])}"
                )
        if not found_images:
            raise DataError(
                f"segmentation_folder {directory!r}: no images in {image_dir!r} "
                f"({', '.join(EXTENSIONS)}) with PNG masks in {mask_dir!r}"
            )
        stems = sorted(found_images)
        self.images = [os.path.join(image_dir, found_images[s]) for s in stems]
        self.masks = [os.path.join(mask_dir, found_masks[s]) for s in stems]

    def __len__(self) -> int:
        return len(self.images)

    def _shard(self, info: InputInfo):
        own = slice(info.pipeline_id, None, info.num_pipelines)
        if not self.images[own]:
            raise DataError(
                f"segmentation_folder {self.directory!r} has {len(self)} images, fewer than "
                f"the {info.num_pipelines} input pipelines"
            )
        return self.images[own], self.masks[own]

    def records(self, info: InputInfo) -> tf.data.Dataset:
        """This pipeline's `(image path, mask path)` pairs."""
        return tf.data.Dataset.from_tensor_slices(self._shard(info))

    @property
    def image_files(self) -> list[str]:
        """Every image, in listing order (what the pass before training names)."""
        return self.images

    def indexed_records(self, info: InputInfo) -> tuple[list[int], tf.data.Dataset]:
        """(indices in `images` of this pipeline's pairs, their `(index, image path, mask
        path)` records), for the pass before training."""
        images, masks = self._shard(info)
        indices = list(range(len(self)))[info.pipeline_id :: info.num_pipelines]
        return indices, tf.data.Dataset.from_tensor_slices(
            (tf.constant(indices, tf.int64), tf.constant(images), tf.constant(masks))
        )

    def drop(self, files) -> None:
        """Leaves the pairs of the images `files` out, before any pipeline takes its shard."""
        keep = [image not in files for image in self.images]
        if not any(keep):
            raise DataError(f"segmentation_folder {self.directory!r}: no pair left to train on")
        self.images = [i for i, kept in zip(self.images, keep, strict=True) if kept]
        self.masks = [m for m, kept in zip(self.masks, keep, strict=True) if kept]

    @staticmethod
    def load(image_path, mask_path):
        return tf.io.read_file(image_path), tf.io.read_file(mask_path)

    @staticmethod
    def load_image(image_path, mask_path):
        del mask_path
        return tf.io.read_file(image_path)

    @staticmethod
    def load_mask(image_path, mask_path):
        del image_path
        return tf.io.read_file(mask_path)

    @staticmethod
    def describe(image_path, mask_path):
        return ["image", image_path, "mask", mask_path]

    def scan(self, info: InputInfo):
        """(name, image bytes, mask bytes) of each pair of the shard, eagerly."""
        for image, mask in zip(*self._shard(info), strict=True):
            name = f"mask {mask} (image {image})"
            yield name, tf.io.read_file(image), tf.io.read_file(mask)


class SegmentationTFRecord:
    """Encoded images and masks from TFRecord files."""

    # An image is a record, not a file: one that cannot be decoded stops the pass before
    # training, named by `scan`.
    drops_files = False
    image_files: tuple[str, ...] = ()

    def __init__(self, path: str, *, image_key: str, mask_key: str):
        self.path = path
        self.files = list_files(path)
        self.image_key, self.mask_key = image_key, mask_key
        for record in tf.data.TFRecordDataset(self.files[0]).take(1):
            features = tf.train.Example.FromString(record.numpy()).features.feature
            for key, field in ((image_key, "data.image_key"), (mask_key, "data.mask_key")):
                if key not in features or features[key].WhichOneof("kind") != "bytes_list":
                    raise DataError(
                        f"TFRecord file {self.files[0]!r} has no bytes feature {key!r} (set "
                        f"{field}); it has {sorted(features)}"
                    )
            break
        else:
            raise DataError(f"TFRecord file {self.files[0]!r} holds no record")
        self._spec = {key: tf.io.FixedLenFeature([], tf.string) for key in (image_key, mask_key)}

    def records(self, info: InputInfo) -> tf.data.Dataset:
        """This pipeline's serialized records."""
        own_files, shard_records = shard_files(self.files, info)
        records = tf.data.TFRecordDataset(own_files)
        return records.shard(info.num_pipelines, info.pipeline_id) if shard_records else records

    def load(self, record):
        parsed = tf.io.parse_single_example(record, self._spec)
        return parsed[self.image_key], parsed[self.mask_key]

    def load_image(self, record):
        return self.load(record)[0]

    def load_mask(self, record):
        return self.load(record)[1]

    def indexed_records(self, info: InputInfo) -> tuple[list[int], tf.data.Dataset]:
        """([], this pipeline's `(index, record)`), for the pass before training."""
        return [], self.records(info).enumerate()

    def describe(self, record):
        del record
        return [f"TFRecord {self.path} feature {self.mask_key}"]

    def scan(self, info: InputInfo):
        for name, record in named_records(self.files, info):
            image, mask = self.load(record)
            yield name, image, mask


def _common_folder(files: list[str]) -> str:
    """The longest folder prefix (ending in "/") that every path in `files` starts with."""
    prefix = os.path.commonprefix(files)
    return prefix[: prefix.rfind("/") + 1]


def _prediction_folder(path: str) -> str:
    """`path`, or its images/ when it is a folder laid out for training (with masks/)."""
    images_dir, masks_dir = (os.path.join(path, n) for n in ("images", "masks"))
    if tf.io.gfile.isdir(images_dir) and tf.io.gfile.isdir(masks_dir):
        return images_dir
    return path


def folder_prediction_files(path: str) -> list[str]:
    """The images `folder_prediction_records` reads, sorted."""
    return image_files(_prediction_folder(path))


def folder_prediction_records(
    path: str, info: InputInfo, scored: ScoredRows | None = None
) -> tf.data.Dataset:
    """This pipeline's `(file, row 0, encoded image, name)` for batch prediction: every
    image under the folder `path` (at any depth; of a folder laid out for training, with
    images/ and masks/, its images/ only) or of a glob, once over all pipelines (every
    P-th of the sorted listing, as `image_folder.prediction_records`), except those
    `scored` already (never read). `name` is the image's path under the folder (a
    glob's: the files' common folder) without its extension, so that masks written as
    `<name>.png` pair with the images by stem, as `segmentation_folder` reads them. A
    pipeline may get no image."""
    path = _prediction_folder(path)
    files = image_files(path)
    prefix = path.rstrip("/") + "/" if tf.io.gfile.isdir(path) else _common_folder(files)
    names = [os.path.splitext(file[len(prefix) :])[0] for file in files]
    named: dict[str, str] = {}
    for file, name in zip(files, names, strict=True):
        if name in named:
            raise DataError(
                f"--data {path!r}: {named[name]!r} and {file!r} would both write the mask "
                f"{name}.png (images are named by their path without extension)"
            )
        named[name] = file
    own = list(zip(files, names, strict=True))[info.pipeline_id :: info.num_pipelines]
    own = [(file, name) for file, name in own if (file, 0) not in (scored or ())]
    records = tf.data.Dataset.from_tensor_slices(
        (
            tf.constant([file for file, _ in own], tf.string),
            tf.constant([name for _, name in own], tf.string),
        )
    )
    return records.map(
        lambda file, name: (file, tf.constant(0, tf.int64), tf.io.read_file(file), name)
    )


def tfrecord_prediction_records(
    path: str, info: InputInfo, image_key: str, scored: ScoredRows | None = None
) -> tf.data.Dataset:
    """This pipeline's `(file, record index, encoded image, name)` for batch prediction:
    `image_tfrecord.prediction_records` (every record once over all pipelines, except
    those `scored` already; masks are not read), named `<file under the files' common
    folder>/<record index>`."""
    prefix = len(_common_folder(list_files(path)).encode())

    def named(file, row, encoded):
        relative = tf.strings.substr(file, prefix, tf.strings.length(file) - prefix)
        return file, row, encoded, tf.strings.join([relative, tf.strings.as_string(row)], "/")

    return image_tfrecord.prediction_records(path, info, image_key, scored).map(named)
