"""`data.source = "image_folder"`: one subfolder per class (data/readers/image_folder.py),
read as both image sources are (data/sources/image_files.py)."""

from __future__ import annotations

import tensorflow as tf

from focal_dist.data.readers import image_folder
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.data.sources.image_files import ImageFilesSource
from focal_dist.distribute import InputInfo


class ImageFolderSource(ImageFilesSource):
    name = "image_folder"

    def prediction_files(self, path: str) -> list[str]:
        return image_folder.image_files(path)

    def prediction_records(
        self, path: str, info: InputInfo, scored: ScoredRows | None = None
    ) -> tf.data.Dataset:
        """Every image under the folder `path` (class folders or not), or of a glob."""
        return image_folder.prediction_records(path, info, scored)


from_config = ImageFolderSource.from_config
