"""Small real PNG and JPEG images on disk, in both layouts the image sources read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASS_NAMES = ("benign", "cyst", "malignant", "normal")
# Imbalanced on purpose; 16 images in all, a multiple of the tests' global batch (8).
CLASS_COUNTS = (7, 5, 3, 1)
# The small CNN run most image CLI tests train (configs/images.py plus these): 16x16
# images, 4 steps of global batch 8.
TINY_IMAGES = {
    "data.image_size": 16,
    "model.filters": "(8,16)",
    "train.steps": 4,
    "train.global_batch_size": 8,
    "train.steps_per_loop": 2,
    "train.eval_every": 0,
}


def images(count: int, seed: int, channels: int = 3) -> list[np.ndarray]:
    """uint8 images of varying sizes (resizing is exercised), brighter for higher seeds."""
    rng = np.random.default_rng(seed)
    shapes = [(20, 24), (24, 20), (18, 18)]
    return [
        rng.integers(0, 160, size=(*shapes[i % 3], channels), dtype=np.uint8) + seed % 4 * 30
        for i in range(count)
    ]


def encode(image: np.ndarray, fmt: str) -> bytes:
    import tensorflow as tf

    encoder = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    return encoder(image).numpy()


def write_image_folder(directory: Path, counts=CLASS_COUNTS, names=CLASS_NAMES) -> Path:
    """directory/<class>/<i>.png|.jpg, PNG and JPEG alternating; returns `directory`."""
    for index, (name, count) in enumerate(zip(names, counts, strict=True)):
        folder = directory / name
        folder.mkdir(parents=True)
        for i, image in enumerate(images(count, seed=index)):
            fmt = "png" if i % 2 == 0 else "jpeg"
            (folder / f"{i:03d}.{'png' if fmt == 'png' else 'jpg'}").write_bytes(encode(image, fmt))
    return directory


def write_image_tfrecords(
    directory: Path,
    labels: list,
    *,
    num_files: int = 2,
    image_key: str = "image/encoded",
    label_key: str = "image/class/label",
    garbage: bool = False,
) -> str:
    """One tf.train.Example per label (an int, or a list of ints for multi-label), split
    over `num_files` files; images alternate PNG and JPEG, or are garbage bytes."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    pictures = images(len(labels), seed=7)
    writers = [
        tf.io.TFRecordWriter(str(directory / f"images-{k}.tfrecord")) for k in range(num_files)
    ]
    for i, label in enumerate(labels):
        encoded = b"not an image %d" % i if garbage else encode(pictures[i], ("png", "jpeg")[i % 2])
        ids = [int(v) for v in label] if isinstance(label, (list, tuple)) else [int(label)]
        feature = {
            image_key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
            label_key: tf.train.Feature(int64_list=tf.train.Int64List(value=ids)),
        }
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        writers[i * num_files // len(labels)].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    return str(directory / "images-*.tfrecord")
