"""`data.source = "segmentation_folder"` or `"segmentation_tfrecord"`: images with masks.

Features are float32 [B, H, W, channels] in [0, 1]; labels int64 [B, H, W] class ids, or
`data.ignore_label`. Training reads this pipeline's shard (data/readers/segmentation.py),
shuffled, each pair decoded, checked and augmented together (data/masks.py); eval and
calibration are read whole on every pipeline, resized without augmentation, and split
by global batch. `check_files` is the pass before training: it decodes every image of
every split, checks every mask against it and counts the training masks' valid pixels
per class (the pixel histogram), so a bad mask anywhere stops the run before training
(a failed pass is turned into a DataError naming the example by `locate`) and an image
that cannot be decoded is refused or left out (data/bad_files.py, `drop_files`).
`label_batches` gives, per batch of training masks, the class ids of their valid pixels
(`python -m focal_dist.histogram` counts them; the image's size read from its header).
`prediction_batches` reads images alone (batch prediction), at any depth under a folder
or of a glob, or records.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from focal_dist.data import bad_files, images, masks, pipeline
from focal_dist.data.bad_files import error_text
from focal_dist.data.files import DataError, list_files
from focal_dist.data.readers import segmentation
from focal_dist.data.readers.segmentation import SegmentationFolder, SegmentationTFRecord
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.data.sources.base import Source, check_split
from focal_dist.distribute import InputInfo

MASKS_PER_BATCH = 64


def mask_options(data, num_classes: int) -> masks.MaskOptions:
    """The MaskOptions of `config.data` (image_size, channels, augment, ignore_label)."""
    return masks.MaskOptions(
        image=images.ImageOptions(
            image_size=data.image_size,
            channels=data.channels,
            augment=data.augment,
            crop_min_area=data.crop_min_area,
        ),
        num_classes=num_classes,
        ignore_label=data.get("ignore_label", 255),
    )


def finish(features, labels):
    return tf.cast(features, tf.float32), tf.cast(labels, tf.int64)


class SegmentationFilesSource(Source):
    """Images and masks at `data.path` (train), `data.eval_path`, `data.calibration_path`."""

    label_mode = "sparse"  # a class id per pixel
    label_pass_checks_values = True

    def __init__(self, data, *, num_classes: int):
        if not data.path:
            raise ValueError(f"data.path is required for data.source={self.name!r}")
        self.num_classes = num_classes
        self.options = mask_options(data, num_classes)
        self.shuffle_buffer = data.shuffle_buffer
        self.data = data
        self._readers = None

    @property
    def readers(self) -> dict:
        """Each split's pairs, listed and checked when first read (the task reads them as
        it is built; batch prediction reads other files, images alone, and never these)."""
        if self._readers is None:
            data = self.data
            readers = {"train": self.reader(data, data.path), "calibration": None}
            readers["eval"] = readers["train"]
            for split, field in (("eval", "eval_path"), ("calibration", "calibration_path")):
                if data[field] and data[field] != data.path:
                    readers[split] = self.reader(data, data[field])
            self._readers = readers
        return self._readers

    @classmethod
    def from_config(cls, data, *, label_mode: str = "sparse", num_classes: int):
        del label_mode
        return cls(data, num_classes=num_classes)

    def reader(self, data, path: str):
        raise NotImplementedError

    def prediction_records(
        self, path: str, info: InputInfo, scored: ScoredRows | None = None
    ) -> tf.data.Dataset:
        """This pipeline's `(file, row, encoded image, mask name)` of the images at `path`,
        except those `scored` already."""
        raise NotImplementedError

    def prediction_batches(
        self, path: str, info: InputInfo, batch_size: int, scored: ScoredRows | None = None
    ) -> tf.data.Dataset:
        """`Source.prediction_batches` of images alone, decoded as evaluation decodes them,
        with `"name"` (where the image's mask goes, data/readers/segmentation.py) and
        `"size"` (int32 [B, 2], the image's own height and width)."""
        records = self.prediction_records(path, info, scored)
        return masks.prediction_batches(records, self.options, batch_size)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.options.image.input_shape

    @property
    def finish(self):
        return finish

    def _pair(self, record, seed=None):
        reader = self.readers["train"]
        record = record if isinstance(record, tuple) else (record,)
        image, mask = reader.load(*record)
        describe = reader.describe(*record)
        return masks.decode_pair(image, mask, self.options, seed=seed, describe=describe)

    def train_batches(self, info: InputInfo) -> tf.data.Dataset:
        records = self.readers["train"].records(info)
        if self.shuffle_buffer:
            records = records.shuffle(self.shuffle_buffer, seed=info.seed + info.pipeline_id)
        skipped = info.skip_global_batches * info.replicas_per_pipeline
        skipped *= info.per_replica_batch_size
        records = records.repeat().skip(skipped).enumerate(start=skipped)
        pipeline_seed = tf.constant(info.seed * 65536 + info.pipeline_id, tf.int64)
        augment = self.options.image.augment

        def load(index, *record):
            seed = tf.stack([pipeline_seed, index]) if augment else None
            return self._pair(record if len(record) > 1 else record[0], seed)

        pairs = records.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return pipeline.finish_batches(pairs.batch(info.per_replica_batch_size), finish)

    def split_batches(self, info: InputInfo, split: str) -> tf.data.Dataset | None:
        check_split(split)
        reader = self.readers[split]
        if reader is None:
            return None

        def load(*record):
            image, mask = reader.load(*record)
            return masks.decode_pair(image, mask, self.options, describe=reader.describe(*record))

        pairs = reader.records(InputInfo(0, 1, info.per_replica_batch_size)).map(
            load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return pipeline.split_global_batches(
            pairs, info, global_batch_size=info.global_batch_size, repeat=False, finish=finish
        )

    def _pixel_ids(self, reader, info: InputInfo) -> tf.data.Dataset:
        def ids(*record):
            image, mask = reader.load(*record)
            describe = reader.describe(*record)
            return masks.valid_pixel_ids(image, mask, self.options, describe=describe)

        ids = reader.records(info).map(ids, num_parallel_calls=tf.data.AUTOTUNE)
        # Counted in batches of masks: the histogram's per-batch work, once per batch.
        return ids.ragged_batch(MASKS_PER_BATCH).map(lambda batch: batch.flat_values)

    def label_batches(self, info: InputInfo) -> tf.data.Dataset:
        """The valid pixels' class ids (1-D int64) of each batch of training masks of this
        pipeline's shard, checked: count them with `label_histogram(label_mode="sparse")`."""
        return self._pixel_ids(self.readers["train"], info)

    def check_files(self, info: InputInfo) -> bad_files.FileCheck:
        """The pass before training over this pipeline's shard of every split: each image
        decoded, each mask checked against it; the training masks' valid pixels counted
        per class (the pixel histogram) over the pairs whose image decoded. An image
        that cannot be decoded is left out of the pass and reported (a folder's; a
        TFRecord's stops it); a bad mask stops it, named (`locate`)."""
        channels, options = self.options.image.channels, self.options
        parts, label_counts, checked = [], None, []
        for split in ("train", "eval", "calibration"):
            reader = self.readers[split]
            if reader is None or any(reader is other for other in checked):
                continue
            checked.append(reader)

            def decode(*record, reader=reader):
                image = reader.load_image(*record)
                return images.decoded_size(image, channels, describe=reader.describe(*record))

            def count(size, *record, reader=reader):
                mask = reader.load_mask(*record)
                return masks.pixel_counts(size, mask, options, describe=reader.describe(*record))

            shard, records = reader.indexed_records(info)
            try:
                kept, counts = bad_files.run_pass(
                    records,
                    decode,
                    count=count,
                    width=self.num_classes,
                    drop_undecodable=reader.drops_files,
                )
            except tf.errors.InvalidArgumentError as error:
                raise self.locate(info, split, error) from error
            if split == "train":
                label_counts = np.append(counts, counts.sum())
            parts.append(bad_files.undecodable(reader.image_files, shard, kept))
        return bad_files.FileCheck(bad_files.joined(parts), label_counts)

    def drop_files(self, files) -> None:
        for reader in {id(r): r for r in self.readers.values() if r is not None}.values():
            reader.drop(files)

    def locate(self, info: InputInfo, split: str, error: Exception) -> DataError:
        """The DataError naming the first example of this pipeline's shard of `split`
        whose checks fail (the pass that raised `error` could not name it). A folder's
        image that cannot be decoded is passed over: `check_files` reports those."""
        reader = self.readers[split or "train"]
        channels = self.options.image.channels
        for name, image, mask in reader.scan(info):
            try:
                size = images.decoded_size(image, channels)
            except tf.errors.InvalidArgumentError as bad:
                if reader.drops_files:
                    continue
                return DataError(f"{name}: the image cannot be decoded: {error_text(bad.message)}")
            try:
                masks.pixel_counts(size, mask, self.options)
            except tf.errors.InvalidArgumentError as bad:
                return DataError(f"{name}: {error_text(bad.message)}")
        return DataError(f"data.source={self.name!r} {split} split: {error_text(str(error))}")


class SegmentationFolderSource(SegmentationFilesSource):
    name = "segmentation_folder"

    def reader(self, data, path):
        return SegmentationFolder(path)

    def prediction_files(self, path):
        return segmentation.folder_prediction_files(path)

    def prediction_records(self, path, info, scored=None):
        return segmentation.folder_prediction_records(path, info, scored)


class SegmentationTFRecordSource(SegmentationFilesSource):
    name = "segmentation_tfrecord"

    def reader(self, data, path):
        return SegmentationTFRecord(
            path, image_key=data.image_key, mask_key=data.get("mask_key", _MASK_KEY)
        )

    def prediction_files(self, path):
        return list_files(path)

    def prediction_records(self, path, info, scored=None):
        return segmentation.tfrecord_prediction_records(path, info, self.data.image_key, scored)


_MASK_KEY = "image/segmentation/class/encoded"
