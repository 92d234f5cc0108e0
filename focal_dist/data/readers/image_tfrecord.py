"""`data.source = "image_tfrecord"`: tf.train.Example records holding encoded images.

The keys default to those of TF Model Garden's and TF-slim's ImageNet records:
`image/encoded` (JPEG, PNG, GIF or BMP bytes) and `image/class/label` (int64). A binary
or multiclass record has one label; a multi-label record has the list of its classes'
ids (possibly empty), turned here into a multi-hot vector of width `num_classes`.
Counting labels parses the label key only: image bytes are never decoded.
"""

from __future__ import annotations

import tensorflow as tf

from focal_dist.data.files import DataError, list_files, named_records, shard_files
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.distribute import InputInfo


def _first_example(path: str) -> dict[str, tuple[str, int]]:
    for record in tf.data.TFRecordDataset(path).take(1):
        example = tf.train.Example.FromString(record.numpy())
        return {
            name: (
                feature.WhichOneof("kind"),
                len(getattr(feature, feature.WhichOneof("kind")).value),
            )
            for name, feature in example.features.feature.items()
        }
    raise DataError(f"TFRecord file {path!r} holds no record")


class ImageTFRecord:
    """Encoded images and labels from TFRecord files, sharded per pipeline."""

    def __init__(
        self, path: str, *, label_mode: str, num_classes: int, image_key: str, label_key: str
    ):
        self.path = path
        self.files = list_files(path)
        self.multi_label = label_mode == "multi_label"
        self.num_classes = num_classes
        self.image_key = image_key
        self.label_key = label_key
        kinds = _first_example(self.files[0])
        for key, kind in ((image_key, "bytes_list"), (label_key, "int64_list")):
            if key not in kinds:
                raise DataError(
                    f"TFRecord file {self.files[0]!r} has no feature {key!r}; it has "
                    f"{sorted(kinds)} (set data.image_key / data.image_label_key)"
                )
            if kinds[key][0] != kind:
                raise DataError(
                    f"TFRecord file {self.files[0]!r}: feature {key!r} is a "
                    f"{kinds[key][0]}; expected a {kind}"
                )
        if not self.multi_label and kinds[label_key][1] != 1:
            raise DataError(
                f"TFRecord file {self.files[0]!r}: feature {label_key!r} holds "
                f"{kinds[label_key][1]} labels; a {label_mode} task takes one per image "
                "(task.name=multi_label takes a list)"
            )
        label_feature = (
            tf.io.VarLenFeature(tf.int64)
            if self.multi_label
            else tf.io.FixedLenFeature([], tf.int64)
        )
        self._label_spec = {label_key: label_feature}
        self._example_spec = {image_key: tf.io.FixedLenFeature([], tf.string), **self._label_spec}

    def _records(self, info: InputInfo, *, parallel_reads: bool = True) -> tf.data.Dataset:
        own_files, shard_records = shard_files(self.files, info)
        # Interleaved reads keep the decoders fed; a label pass, which only parses small
        # records, ran 3.5x faster from one sequential stream (bench/image_pipeline.py).
        parallel = parallel_reads and len(own_files) > 1
        records = tf.data.TFRecordDataset(
            own_files, num_parallel_reads=min(4, len(own_files)) if parallel else None
        )
        return records.shard(info.num_pipelines, info.pipeline_id) if shard_records else records

    def _multi_hot(self, values, row_ids, rows) -> tf.Tensor:
        """[rows, C] 0/1 from the class ids `values` of rows `row_ids`."""
        in_range = tf.logical_and(values >= 0, values < self.num_classes)
        check = tf.debugging.Assert(
            tf.reduce_all(in_range),
            [
                f"TFRecord {self.path} feature {self.label_key}: labels must be in "
                f"[0, {self.num_classes}), got",
                tf.boolean_mask(values, tf.logical_not(in_range))[:10],
            ],
        )
        with tf.control_dependencies([check]):
            hot = tf.one_hot(values, self.num_classes, dtype=tf.int64)
        # Rows with no label get no one_hot row: summing by row id leaves them zero.
        return tf.minimum(tf.math.unsorted_segment_sum(hot, row_ids, rows), 1)

    def records(self, info: InputInfo) -> tf.data.Dataset:
        """This pipeline's serialized records, unbatched; `parse` splits one."""
        return self._records(info)

    def parse(self, record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`(encoded image, label)` of one serialized record."""
        parsed = tf.io.parse_single_example(record, self._example_spec)
        label = parsed[self.label_key]
        if self.multi_label:
            label = self._multi_hot(label.values, tf.zeros_like(label.values), 1)[0]
        return parsed[self.image_key], label

    def examples(self, info: InputInfo) -> tf.data.Dataset:
        """This pipeline's `(encoded image, label)` pairs, unbatched."""
        return self.records(info).map(self.parse, num_parallel_calls=tf.data.AUTOTUNE)

    def labels_dataset(self, info: InputInfo, batch_size: int) -> tf.data.Dataset:
        """This pipeline's labels in batches; only the label key is parsed."""

        def parse(records):
            label = tf.io.parse_example(records, self._label_spec)[self.label_key]
            if self.multi_label:
                label = self._multi_hot(label.values, label.indices[:, 0], tf.shape(records)[0])
            return label

        return (
            self._records(info, parallel_reads=False)
            .batch(batch_size)
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        )

    @staticmethod
    def load(encoded: tf.Tensor) -> tf.Tensor:
        return encoded

    def describe(self, reference: tf.Tensor):
        del reference
        return [f"TFRecord {self.path} feature {self.image_key}"]

    def encoded_images(self, info: InputInfo) -> tf.data.Dataset:
        """This pipeline's encoded images alone (the label is not parsed)."""
        spec = {self.image_key: tf.io.FixedLenFeature([], tf.string)}
        return self._records(info).map(
            lambda record: tf.io.parse_single_example(record, spec)[self.image_key],
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def scan(self, info: InputInfo):
        """(name, encoded image) of each record of the shard, eagerly, in file order: what
        names the record a pass over `encoded_images` failed on."""
        spec = {self.image_key: tf.io.FixedLenFeature([], tf.string)}
        for name, record in named_records(self.files, info):
            yield name, tf.io.parse_single_example(record, spec)[self.image_key]


def prediction_records(
    path: str, info: InputInfo, image_key: str, scored: ScoredRows | None = None
) -> tf.data.Dataset:
    """This pipeline's `(file, record index, encoded image)` for batch prediction: every
    record of the files at `path` once over all pipelines (files split between them, or
    the records of each file when there are fewer files than pipelines), except those
    `scored` already (read, not parsed). Labels are not read; a pipeline may get no
    record."""
    own_files, shard_records = shard_files(list_files(path), info)
    spec = {image_key: tf.io.FixedLenFeature([], tf.string)}
    unscored = (scored or ScoredRows()).unscored()

    def file_records(file):
        records = tf.data.TFRecordDataset(file).enumerate()
        if shard_records:
            records = records.shard(info.num_pipelines, info.pipeline_id)
        if scored:
            records = records.filter(lambda row, _: unscored(file, row))
        return records.map(
            lambda row, record: (file, row, tf.io.parse_single_example(record, spec)[image_key])
        )

    return tf.data.Dataset.from_tensor_slices(own_files).flat_map(file_records)
