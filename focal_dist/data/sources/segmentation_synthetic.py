"""`data.source = "segmentation_synthetic"`: generated images with rare structures, in memory.

Each image (`data.image_size`, `data.channels`) is noise over a smooth background with a
few small discs of each foreground class (a class's discs are brighter in its own
channel pattern), so foreground classes cover a few percent of the pixels. A band of
each image is ignored (`data.ignore_label`), from none of it to all of it, so images
differ widely in their number of valid pixels. Everything follows from
`data.synthetic.seed`: every worker generates the same set, and global step k holds the
same images under every distribution (`pipeline.split_in_memory`), which is what the
equivalence tests need. Examples 0 .. n_train - 1 train, the next n_eval evaluate, the
next n_calibration calibrate.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from focal_dist.data import pipeline
from focal_dist.data.sources.base import Source, check_split
from focal_dist.data.sources.segmentation_files import finish, mask_options
from focal_dist.distribute import InputInfo

# Share of each image that is ignored, cycled over the images.
_IGNORED_SHARES = (0.0, 0.0, 0.5, 0.9, 0.0, 1.0, 0.25, 0.97)


def generate(num_images: int, size: tuple[int, int], channels: int, num_classes: int, seed: int):
    """(float32 images [N, H, W, channels] in [0, 1], int64 masks [N, H, W])."""
    rng = np.random.default_rng(seed)
    height, width = size
    rows, columns = np.mgrid[0:height, 0:width]
    images = np.empty((num_images, height, width, channels), np.float32)
    labels = np.zeros((num_images, height, width), np.int64)
    pattern = np.stack([np.cos(np.arange(channels) + c) for c in range(num_classes)])
    for i in range(num_images):
        slope = rng.normal(size=2) / max(height, width)
        image = 0.3 + 0.1 * (rows * slope[0] + columns * slope[1])[..., None]
        image = image + 0.08 * rng.normal(size=(height, width, channels))
        for c in range(1, num_classes):
            for _ in range(rng.integers(0, 3)):
                centre = rng.uniform([0, 0], [height, width])
                radius = rng.uniform(1.0, max(1.5, min(height, width) / 10))
                disc = (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 <= radius**2
                labels[i][disc] = c
                image[disc] += 0.35 + 0.15 * pattern[c]
        images[i] = np.clip(image, 0.0, 1.0)
        ignored_rows = int(round(_IGNORED_SHARES[i % len(_IGNORED_SHARES)] * height))
        labels[i, height - ignored_rows :] = -1  # set to the ignore label by the caller
    return images, labels


class SegmentationSyntheticSource(Source):
    name = "segmentation_synthetic"
    label_mode = "sparse"

    def __init__(self, data, *, num_classes: int):
        self.num_classes = num_classes
        self.options = mask_options(data, num_classes)
        synthetic = data.synthetic
        self.shuffle = data.shuffle_buffer > 0
        sizes = (synthetic.num_train, synthetic.num_eval, synthetic.num_calibration)
        image = self.options.image
        features, labels = generate(
            sum(sizes), image.image_size, image.channels, num_classes, synthetic.seed
        )
        labels[labels < 0] = self.options.ignore_label
        ends = np.cumsum(sizes)
        self.splits = {
            name: (features[end - n : end], labels[end - n : end])
            for name, n, end in zip(("train", "eval", "calibration"), sizes, ends, strict=True)
        }

    @classmethod
    def from_config(cls, data, *, label_mode: str = "sparse", num_classes: int):
        del label_mode
        return cls(data, num_classes=num_classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.options.image.input_shape

    @property
    def finish(self):
        return finish

    def _batches(self, info: InputInfo, split: str, repeat: bool) -> tf.data.Dataset:
        features, labels = self.splits[split]
        return pipeline.split_in_memory(
            tf.data.Dataset.from_tensors((features, labels)).cache(),
            len(labels),
            info,
            global_batch_size=info.global_batch_size,
            shuffle=self.shuffle and repeat,
            seed=info.seed,
            repeat=repeat,
            skip_global_batches=info.skip_global_batches if repeat else 0,
            finish=finish,
        )

    def train_batches(self, info: InputInfo) -> tf.data.Dataset:
        return self._batches(info, "train", repeat=True)

    def split_batches(self, info: InputInfo, split: str) -> tf.data.Dataset | None:
        check_split(split)
        return self._batches(info, split, repeat=False) if len(self.splits[split][1]) else None

    def label_batches(self, info: InputInfo) -> tf.data.Dataset:
        """The valid pixels' class ids of each batch of this pipeline's training masks."""
        labels = self.splits["train"][1][info.pipeline_id :: info.num_pipelines]
        ignore = self.options.ignore_label
        return (
            tf.data.Dataset.from_tensor_slices(labels)
            .batch(64)
            .map(lambda masks: tf.boolean_mask(masks, tf.not_equal(masks, ignore)))
        )


from_config = SegmentationSyntheticSource.from_config
