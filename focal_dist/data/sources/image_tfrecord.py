"""`data.source = "image_tfrecord"`: tf.train.Example records of encoded images
(data/readers/image_tfrecord.py), read as both image sources are
(data/sources/image_files.py)."""

from __future__ import annotations

import tensorflow as tf

from focal_dist.data.files import list_files
from focal_dist.data.readers import image_tfrecord
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.data.sources.image_files import ImageFilesSource
from focal_dist.distribute import InputInfo


class ImageTFRecordSource(ImageFilesSource):
    name = "image_tfrecord"
    config_fields = (*ImageFilesSource.config_fields, "image_key", "image_label_key")

    def prediction_files(self, path: str) -> list[str]:
        return list_files(path)

    def prediction_records(
        self, path: str, info: InputInfo, scored: ScoredRows | None = None
    ) -> tf.data.Dataset:
        """Every record of the files at `path`; only `data.image_key` is read."""
        return image_tfrecord.prediction_records(path, info, self.image_key, scored)


from_config = ImageTFRecordSource.from_config
