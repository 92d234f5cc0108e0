"""Image TFRecords for the image benchmarks, written once and reused.

`--num_images` JPEGs of 96 x 96 (smooth gradients plus noise, ~4-6 kB each, like small
photographs rather than incompressible noise) under TF Model Garden's keys
`image/encoded` and `image/class/label`, binary labels with 10% positives, split into 8
files so that two pipelines can each read their own.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

NUM_FILES = 8
POSITIVE_RATE = 0.1


def labels(num_images: int) -> np.ndarray:
    return (np.random.default_rng(0).random(num_images) < POSITIVE_RATE).astype(np.int64)


def _jpegs(count: int) -> list[bytes]:
    """A pool of distinct encoded images, reused round-robin (encoding is the slow part)."""
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 1, 96, dtype=np.float32)
    encoded = []
    for i in range(count):
        base = np.stack(
            [np.outer(ramp, ramp), np.outer(ramp[::-1], ramp), np.full((96, 96), i / count)], -1
        )
        image = np.clip(base * 200 + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        encoded.append(tf.io.encode_jpeg(image, quality=90).numpy())
    return encoded


def _example(image: bytes, label: int) -> bytes:
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                "image/class/label": tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[int(label)])
                ),
            }
        )
    ).SerializeToString()


def write(data_dir: str, num_images: int) -> str:
    """Writes the files once; returns their glob pattern."""
    directory = os.path.join(data_dir, f"images-{num_images}")
    pattern = os.path.join(directory, "train-*.tfrecord")
    if os.path.exists(os.path.join(directory, "done")):
        return pattern
    os.makedirs(directory, exist_ok=True)
    pool = _jpegs(256)
    y = labels(num_images)
    for f in range(NUM_FILES):
        with tf.io.TFRecordWriter(os.path.join(directory, f"train-{f:02d}.tfrecord")) as writer:
            for i in range(f, num_images, NUM_FILES):
                writer.write(_example(pool[i % len(pool)], y[i]))
    open(os.path.join(directory, "done"), "w").close()
    return pattern
