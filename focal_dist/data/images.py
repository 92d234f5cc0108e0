"""Image classification inputs: decoding, resizing, augmentation and batching.

Two layouts (`data.source`):

* `image_tfrecord` (data/readers/image_tfrecord.py): tf.train.Example records with
  encoded bytes under `data.image_key` and labels under `data.image_label_key`;
* `image_folder` (data/readers/image_folder.py): one subfolder per class.

Images come out as float32 `[H, W, channels]` in [0, 1], resized to `data.image_size`.
Training shuffles the raw records of this pipeline's shard (encoded images are cheap to
hold), then parses, decodes and augments them in one parallel, deterministic `map`: a
random crop covering `crop_min_area` to all of the image (aspect ratio 3/4 to 4/3),
resized, and a random horizontal flip. The randomness of example i of this pipeline is
a stateless function of (seed, pipeline, i), so a resumed run sees the augmentations it
would have seen.
Evaluation resizes the whole image. Label counts never decode an image; the pass
before training decodes every image of an `image_folder` once (data/bad_files.py).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from focal_dist.data import pipeline, unreadable
from focal_dist.data.files import DataError
from focal_dist.data.readers.image_folder import ImageFolder
from focal_dist.data.readers.image_tfrecord import ImageTFRecord
from focal_dist.distribute import InputInfo

# Layout -> its reader, from (path, label_mode, num_classes, image_key, label_key).
_READERS = {
    "image_tfrecord": lambda path, image_key, label_key, **labels: ImageTFRecord(
        path, image_key=image_key, label_key=label_key, **labels
    ),
    "image_folder": lambda path, image_key, label_key, **labels: ImageFolder(path, **labels),
}
SOURCES = tuple(_READERS)

# First bytes of the formats tf.io.decode_image reads.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")


@dataclasses.dataclass(frozen=True)
class ImageOptions:
    """How images are decoded and augmented.

    Attributes:
      image_size: (height, width) after resizing.
      channels: 1 (grey) or 3 (RGB); decoding converts to it.
      augment: random crop and flip in training (never in evaluation).
      crop_min_area: smallest fraction of the image a training crop covers, in (0, 1].
    """

    image_size: tuple[int, int]
    channels: int = 3
    augment: bool = True
    crop_min_area: float = 0.64

    def __post_init__(self):
        size = self.image_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(
                f"data.image_size must be an int or (height, width) > 0; got {self.image_size!r}"
            )
        object.__setattr__(self, "image_size", tuple(int(s) for s in size))
        if self.channels not in (1, 3):
            raise ValueError(f"data.channels must be 1 or 3; got {self.channels!r}")
        if not 0 < self.crop_min_area <= 1:
            raise ValueError(f"data.crop_min_area must be in (0, 1]; got {self.crop_min_area!r}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.image_size, self.channels)


def decode(encoded, options: ImageOptions, *, seed=None, describe=()) -> tf.Tensor:
    """float32 `[H, W, channels]` in [0, 1]; with `seed` (shape [2]), a random crop+flip.

    Bytes in no known image format fail with a message naming `describe`'s items.
    """
    image = decode_uint8(encoded, options.channels, describe=describe)
    if seed is not None:
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=crop_seed,
            min_object_covered=0.0,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(options.crop_min_area, 1.0),
            max_attempts=10,
        )
        image = tf.slice(image, begin, size)
    image = tf.image.resize(image, options.image_size, antialias=True) / 255.0
    if seed is not None:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    # The resize fixes the static shape; the clip catches an antialiased value a rounding
    # step past 1.
    return tf.clip_by_value(image, 0.0, 1.0)


def decode_uint8(encoded, channels: int, *, describe=()) -> tf.Tensor:
    """uint8 `[h, w, channels]` at the image's own size; bytes in no known image format
    fail with a message naming `describe`'s items."""
    # One substr of four lengths and one comparison: per-image ops cost ~2 µs each here.
    prefixes = tf.strings.substr(encoded, [0] * len(_SIGNATURES), [len(s) for s in _SIGNATURES])
    known = tf.reduce_any(prefixes == tf.constant(_SIGNATURES))
    check = tf.debugging.Assert(known, [*describe, ": not a JPEG, PNG, GIF or BMP image"])
    with tf.control_dependencies([check]):
        return tf.io.decode_image(
            encoded, channels=channels, expand_animations=False, dtype=tf.uint8
        )


def decoded_size(encoded, channels: int, *, describe=()) -> tf.Tensor:
    """int32 [2] (height, width) of encoded image bytes, from their decoded pixels: the
    decoder training uses, so a body cut short fails here (its header alone would pass)."""
    return tf.shape(decode_uint8(encoded, channels, describe=describe))[:2]


class ImageSource:
    """One image data set (`image_tfrecord` or `image_folder`) as the task reads it."""

    def __init__(
        self,
        source: str,
        path: str,
        options: ImageOptions,
        *,
        label_mode: str,
        num_classes: int,
        image_key: str = "image/encoded",
        label_key: str = "image/class/label",
    ):
        if source not in _READERS:
            raise DataError(
                f"image data.source must be one of {', '.join(SOURCES)}; got {source!r}"
            )
        self.reader = _READERS[source](
            path,
            image_key,
            label_key,
            label_mode=label_mode,
            num_classes=num_classes,
        )
        self.options = options

    @property
    def class_names(self) -> list[str] | None:
        return getattr(self.reader, "class_names", None)

    def _example(self, record, seed=None):
        """(image, label) of one raw record: parsed, read and decoded in one map.

        Parsing here rather than in a map before the shuffle saves a tf.data stage:
        about 80 µs of CPU per image on 2 cores, a sixth of decoding a 96x96 JPEG.
        """
        reader = self.reader
        reference, label = reader.parse(record)
        image = decode(
            reader.load(reference), self.options, seed=seed, describe=reader.describe(reference)
        )
        return image, label

    def train_batches(
        self,
        info: InputInfo,
        *,
        shuffle_buffer: int,
        seed: int,
        skip_global_batches: int = 0,
        finish=None,
    ) -> tf.data.Dataset:
        """Endless per-replica batches of (augmented image, label) from this pipeline's shard.

        `skip_global_batches` skips the records of the global steps already taken (this
        pipeline's share) without parsing or decoding them. `finish` maps each batch
        before the prefetch.
        """
        records = self.reader.records(info)
        if shuffle_buffer:
            records = records.shuffle(shuffle_buffer, seed=seed + info.pipeline_id)
        skipped = skip_global_batches * info.replicas_per_pipeline * info.per_replica_batch_size
        records = records.repeat().skip(skipped).enumerate(start=skipped)
        pipeline_seed = tf.constant(seed * 65536 + info.pipeline_id, tf.int64)
        augment = self.options.augment

        def load(index, record):
            return self._example(record, tf.stack([pipeline_seed, index]) if augment else None)

        images = records.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return pipeline.finish_batches(images.batch(info.per_replica_batch_size), finish)

    def eval_examples(self, info: InputInfo) -> tf.data.Dataset:
        """Unbatched (image, label) of `info`'s shard, resized without augmentation."""
        return self.reader.records(info).map(
            # A listing's record arrives as (path, label), a TFRecord's as one string.
            lambda *record: self._example(record if len(record) > 1 else record[0]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def labels(self, info: InputInfo, batch_size: int) -> tf.data.Dataset:
        """Batches of this pipeline's labels; no image is read or decoded."""
        return self.reader.labels_dataset(info, batch_size)


def prediction_batches(
    records: tf.data.Dataset, options: ImageOptions, batch_size: int
) -> tf.data.Dataset:
    """Batches of `{"file", "row", "features", "error"}` from `(file, row, encoded image)`
    records, each image resized without augmentation (as in evaluation); one that cannot
    be decoded has zero features and the decoder's message as its "error"
    (data/unreadable.py)."""
    batches = unreadable.decode_or_flag(
        records,
        keep=lambda file, index, encoded: {"file": file, "row": index},
        decode=lambda file, index, encoded: {"features": decode(encoded, options)},
        batch_size=batch_size,
    )
    return batches.prefetch(tf.data.AUTOTUNE)


def from_config(
    data, *, path: str, label_mode: str, num_classes: int, source: str | None = None
) -> ImageSource:
    """The ImageSource of `config.data` for `path` (data.path, eval_path or
    calibration_path), in the layout `source` (default: data.source)."""
    return ImageSource(
        source or data.source,
        path,
        ImageOptions(
            image_size=data.image_size,
            channels=data.channels,
            augment=data.augment,
            crop_min_area=data.crop_min_area,
        ),
        label_mode=label_mode,
        num_classes=num_classes,
        image_key=data.image_key,
        label_key=data.image_label_key,
    )
