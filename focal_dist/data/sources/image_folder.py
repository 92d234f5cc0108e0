"""`data.source = "image_folder"`: one subfolder per class (data/readers/image_folder.py),
read as both image sources are (data/sources/image_files.py). Before training every
image of every split is decoded once (`check_files`, data/bad_files.py)."""

from __future__ import annotations

import tensorflow as tf

from focal_dist.data import bad_files, images
from focal_dist.data.readers import image_folder
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.data.sources.image_files import ImageFilesSource
from focal_dist.distribute import InputInfo


class ImageFolderSource(ImageFilesSource):
    name = "image_folder"
    config_fields = (*ImageFilesSource.config_fields, "bad_files")

    def check_files(self, info: InputInfo) -> bad_files.FileCheck:
        """Every image of this pipeline's shard of every split read and decoded once;
        the labels are the listing's (counted without reading an image)."""
        channels, parts = self.options.channels, []
        for folder in self.readers():
            shard, records = folder.indexed_paths(info)
            kept, _ = bad_files.run_pass(
                records, lambda path: images.decoded_size(tf.io.read_file(path), channels)
            )
            parts.append(bad_files.undecodable(folder.paths, shard, kept))
        return bad_files.FileCheck(bad_files.joined(parts))

    def drop_files(self, files) -> None:
        for folder in self.readers():
            folder.drop(files)

    def prediction_files(self, path: str) -> list[str]:
        return image_folder.image_files(path)

    def prediction_records(
        self, path: str, info: InputInfo, scored: ScoredRows | None = None
    ) -> tf.data.Dataset:
        """Every image under the folder `path` (class folders or not), or of a glob."""
        return image_folder.prediction_records(path, info, scored)


from_config = ImageFolderSource.from_config
