"""`data.source = "synthetic"`: the embedded data set (data/synthetic.py), in memory.

Examples 0 .. n_train - 1 train, the next n_eval evaluate and the next n_calibration
calibrate (`data.synthetic.num_*`), so the three splits never share an example and
adding a calibration split leaves the other two unchanged.
"""

from __future__ import annotations

import tensorflow as tf

from focal_dist.data import pipeline
from focal_dist.data.sources.base import Source, check_split
from focal_dist.data.synthetic import SyntheticData, synthetic_dataset
from focal_dist.distribute import InputInfo


class SyntheticSource(Source):
    """The synthetic splits; global step k holds the same examples under every
    distribution (`pipeline.split_in_memory`)."""

    name = "synthetic"
    config_fields = ("source", "num_features", "shuffle_buffer", "synthetic")

    def __init__(
        self,
        generator: SyntheticData,
        *,
        num_train: int,
        num_eval: int,
        num_calibration: int,
        shuffle: bool,
    ):
        self.generator = generator
        self.label_mode = generator.label_mode
        self.num_classes = generator.num_classes
        self.shuffle = shuffle
        # (first example, number of examples) of each split.
        self.splits = {
            "train": (0, num_train),
            "eval": (num_train, num_eval),
            "calibration": (num_train + num_eval, num_calibration),
        }

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.generator.num_features,)

    def serving_inputs(self) -> dict:
        return {"vector_key": "features", "num_features": self.input_shape[0], "dtype": "float32"}

    def _whole(self, split: str) -> tf.data.Dataset:
        """The split as one batch."""
        offset, size = self.splits[split]
        return synthetic_dataset(self.generator, size, offset=offset).batch(size)

    def train_batches(self, info: InputInfo) -> tf.data.Dataset:
        # Held in memory (as `cache()` held it before): each step is a slice of it.
        return pipeline.split_in_memory(
            self._whole("train").cache(),
            self.splits["train"][1],
            info,
            global_batch_size=info.global_batch_size,
            shuffle=self.shuffle,
            seed=info.seed,
            skip_global_batches=info.skip_global_batches,
            finish=self.finish,
        )

    def split_batches(self, info: InputInfo, split: str) -> tf.data.Dataset | None:
        check_split(split)
        if not self.splits[split][1]:
            return None
        return pipeline.split_in_memory(
            self._whole(split),
            self.splits[split][1],
            info,
            global_batch_size=info.global_batch_size,
            repeat=False,
            finish=self.finish,
        )

    def label_batches(self, info: InputInfo) -> tf.data.Dataset:
        ids = tf.data.Dataset.range(self.splits["train"][1])
        ids = ids.shard(info.num_pipelines, info.pipeline_id)
        return ids.batch(4096).map(lambda i: self.generator.examples(i)[1])


def from_config(data, *, label_mode: str, num_classes: int) -> SyntheticSource:
    """The synthetic source of `config.data` (`data.synthetic`, `data.num_features`)."""
    synthetic = data.synthetic
    generator = SyntheticData(
        label_mode=label_mode,
        num_features=data.num_features,
        num_classes=num_classes,
        positive_rate=synthetic.positive_rate,
        label_noise=synthetic.label_noise,
        hard_fraction=synthetic.hard_fraction,
        seed=synthetic.seed,
    )
    return SyntheticSource(
        generator,
        num_train=synthetic.num_train,
        num_eval=synthetic.num_eval,
        num_calibration=synthetic.num_calibration,
        shuffle=data.shuffle_buffer > 0,
    )
