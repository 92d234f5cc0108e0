"""`data.source = "image_tfrecord"`: tf.train.Example records of encoded images
(data/readers/image_tfrecord.py), read as both image sources are
(data/sources/image_files.py). Before training every image of every split is decoded
once (`check_files`): a record that cannot be is named by file and record index."""

from __future__ import annotations

import tensorflow as tf

from focal_dist.data import bad_files, images
from focal_dist.data.bad_files import error_text
from focal_dist.data.files import DataError, list_files
from focal_dist.data.readers import image_tfrecord
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.data.sources.image_files import ImageFilesSource
from focal_dist.distribute import InputInfo


class ImageTFRecordSource(ImageFilesSource):
    name = "image_tfrecord"
    config_fields = (*ImageFilesSource.config_fields, "image_key", "image_label_key")

    def check_files(self, info: InputInfo) -> None:
        """Every image of this pipeline's share of every split decoded once, as training
        decodes it. One that cannot be stops the run with a DataError naming its file and
        record: a record is not a file of its own that could be left out, so
        `data.bad_files = skip` is for folders. None: nothing is counted here (the labels
        are counted by their own pass, which parses the label key alone)."""
        channels = self.options.channels
        for reader in self.readers():
            try:
                bad_files.run_pass(
                    reader.encoded_images(info).enumerate(),
                    lambda image: images.decoded_size(image, channels),
                    drop_undecodable=False,
                )
            except tf.errors.InvalidArgumentError as error:
                raise _locate(reader, info, channels, error) from error
        return None

    def prediction_files(self, path: str) -> list[str]:
        return list_files(path)

    def prediction_records(
        self, path: str, info: InputInfo, scored: ScoredRows | None = None
    ) -> tf.data.Dataset:
        """Every record of the files at `path`; only `data.image_key` is read."""
        return image_tfrecord.prediction_records(path, info, self.image_key, scored)


def _locate(reader, info: InputInfo, channels: int, error: Exception) -> DataError:
    """The DataError naming the first record of the shard whose image does not decode
    (the pass that raised `error` cannot say which)."""
    for name, image in reader.scan(info):
        try:
            images.decoded_size(image, channels)
        except tf.errors.InvalidArgumentError as bad:
            return DataError(f"{name}: the image cannot be decoded: {error_text(bad.message)}")
    return DataError(f"{reader.path}: {error_text(str(error))}")


from_config = ImageTFRecordSource.from_config
