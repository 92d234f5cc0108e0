"""What the two image sources (image folder, image TFRecord) share: each split is an
`images.ImageSource` (decoding, augmentation, batching: data/images.py).

Training reads this pipeline's shard, augmented; eval and calibration are read whole on
every pipeline, resized without augmentation, and split by global batch as the table
sources' are. Every split must name the same classes.
"""

from __future__ import annotations

import abc

import tensorflow as tf

from focal_dist.data import images, pipeline
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.data.sources.base import Source, check_split
from focal_dist.distribute import InputInfo

_LABEL_BATCH = 4096


class ImageFilesSource(Source):
    config_fields = (
        "source", "path", "eval_path", "calibration_path", "shuffle_buffer", "image_size",
        "channels", "augment", "crop_min_area",
    )  # fmt: skip

    """Images at `data.path` (train), `data.eval_path` and `data.calibration_path`."""

    def __init__(self, data, *, label_mode: str, num_classes: int):
        if not data.path:
            raise ValueError(f"data.path is required for data.source={self.name!r}")
        self.label_mode, self.num_classes = label_mode, num_classes
        self.shuffle_buffer = data.shuffle_buffer
        self.image_key = data.image_key
        self.data = data
        self.options = images.ImageOptions(
            image_size=data.image_size,
            channels=data.channels,
            augment=data.augment,
            crop_min_area=data.crop_min_area,
        )
        self._splits = None

    @property
    def splits(self) -> dict:
        """Each split's ImageSource, listed when first read (the task reads them as it is
        built; batch prediction reads other images, unlabelled, and never these)."""
        if self._splits is None:
            data = self.data

            def split(path: str) -> images.ImageSource:
                return images.from_config(
                    data,
                    source=self.name,
                    path=path,
                    label_mode=self.label_mode,
                    num_classes=self.num_classes,
                )

            train = split(data.path)
            splits = {"train": train, "eval": train, "calibration": None}
            for name, field in (("eval", "eval_path"), ("calibration", "calibration_path")):
                path = data[field]
                if path == data.path:
                    splits[name] = train
                elif path:
                    splits[name] = split(path)
                    if splits[name].class_names != train.class_names:
                        raise ValueError(
                            f"data.{field} {path!r} has classes {splits[name].class_names}; "
                            f"data.path {data.path!r} has {train.class_names}"
                        )
            self._splits = splits
        return self._splits

    def readers(self) -> list:
        """Each split's reader once (eval is the training split unless it has its own)."""
        splits = [s for s in self.splits.values() if s is not None]
        return list({id(s.reader): s.reader for s in splits}.values())

    @classmethod
    def from_config(cls, data, *, label_mode: str, num_classes: int) -> ImageFilesSource:
        """The source of `config.data` (paths, image_size, channels, augment, keys, ...)."""
        return cls(data, label_mode=label_mode, num_classes=num_classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.options.input_shape

    def serving_inputs(self) -> dict:
        return {"image": self.options}  # decoded and resized as evaluation does

    @property
    def class_names(self) -> list[str] | None:
        return self.splits["train"].class_names

    def train_batches(self, info: InputInfo) -> tf.data.Dataset:
        return self.splits["train"].train_batches(
            info,
            shuffle_buffer=self.shuffle_buffer,
            seed=info.seed,
            skip_global_batches=info.skip_global_batches,
            finish=self.finish,
        )

    def split_batches(self, info: InputInfo, split: str) -> tf.data.Dataset | None:
        check_split(split)
        source = self.splits[split]
        if source is None:
            return None
        return pipeline.split_global_batches(
            source.eval_examples(InputInfo(0, 1, info.per_replica_batch_size)),
            info,
            global_batch_size=info.global_batch_size,
            repeat=False,
            finish=self.finish,
        )

    def label_batches(self, info: InputInfo) -> tf.data.Dataset:
        return self.splits["train"].labels(info, batch_size=_LABEL_BATCH)

    def prediction_batches(
        self, path: str, info: InputInfo, batch_size: int, scored: ScoredRows | None = None
    ) -> tf.data.Dataset:
        records = self.prediction_records(path, info, scored)
        return images.prediction_batches(records, self.options, batch_size)

    @abc.abstractmethod
    def prediction_records(
        self, path: str, info: InputInfo, scored: ScoredRows | None = None
    ) -> tf.data.Dataset:
        """This pipeline's `(file, row, encoded image)` of the images at `path`, except
        those `scored` already."""
