"""Small segmentation data sets written the way users store them: a folder of
images/*.png (or .jpg) with masks/*.png of class ids, and the same pairs in TFRecords
with Model Garden's keys. Each image's red channel is 60 x its mask's class (ignored
pixels 250), so alignment after augmentation can be read off the image."""

from pathlib import Path

import numpy as np
import tensorflow as tf

CLASSES, IGNORE = 3, 255


def pairs(count: int, seed: int = 0):
    """[(stem, uint8 image [h, w, 3], uint8 mask [h, w])] of several sizes."""
    rng = np.random.default_rng(seed)
    result = []
    for i in range(count):
        height, width = [(24, 32), (32, 32), (40, 28)][i % 3]
        mask = np.zeros((height, width), np.uint8)
        for c in range(1, CLASSES):
            top, left = rng.integers(0, height - 8), rng.integers(0, width - 8)
            mask[top : top + 8, left : left + 8] = c
        mask[: rng.integers(0, height // 2)] = IGNORE  # uneven numbers of valid pixels
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0] = np.where(mask == IGNORE, 250, mask * 60)
        image[..., 1] = rng.integers(0, 255, (height, width))
        result.append((f"case_{i:03d}", image, mask))
    return result


def write_folder(root: Path, count: int = 9, seed: int = 0) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, image, mask in pairs(count, seed):
        tf.io.write_file(str(root / "images" / f"{stem}.png"), tf.io.encode_png(image))
        tf.io.write_file(str(root / "masks" / f"{stem}.png"), tf.io.encode_png(mask[..., None]))
    return root


def write_tfrecords(path_prefix: Path, count: int = 9, seed: int = 0, files: int = 2) -> str:
    writers = [tf.io.TFRecordWriter(f"{path_prefix}-{k}.tfrecord") for k in range(files)]
    for i, (_, image, mask) in enumerate(pairs(count, seed)):
        feature = {
            "image/encoded": _bytes(tf.io.encode_png(image).numpy()),
            "image/segmentation/class/encoded": _bytes(tf.io.encode_png(mask[..., None]).numpy()),
        }
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        writers[i % files].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    return f"{path_prefix}-*.tfrecord"


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def pixel_counts(count: int, seed: int = 0) -> np.ndarray:
    """Valid pixels per class over every mask, at the masks' own sizes."""
    counts = np.zeros(CLASSES, np.int64)
    for _, _, mask in pairs(count, seed):
        counts += np.bincount(mask[mask != IGNORE], minlength=CLASSES)
    return counts
