"""The pass before training on image folders: `task.prepare(backend)` alone, timed.

What a run does before its first step, on --num_images small PNGs written to --data_dir
(64 x 64 RGB, smooth gradients plus noise; masks 64 x 64 of 3 classes, 255 ignored):

- image_folder (4 class folders): the label histogram, plus, since data.bad_files, every
  image read and decoded once;
- segmentation_folder: the pixel histogram (every mask decoded and checked against its
  image), plus, since data.bad_files, every image decoded instead of its header read.

Each against a plain tf.data pass over the same files (parallel read and decode, and for
masks a bincount, no checks). Only `prepare` is timed: the task is built (the folders
listed) outside the timer. Median of --repeats after one warm-up (the files are in the
page cache). It imports focal_dist from the checkout it lies in, or from PYTHONPATH
when given first: run it against an older checkout for the "before" column.

    .venv/bin/python bench/precheck.py                       # 2000 images, 5 repeats
    PYTHONPATH=/path/to/old/checkout .venv/bin/python bench/precheck.py    # "before"
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if not os.environ.get("PYTHONPATH"):  # otherwise it names the checkout to measure
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np
import tensorflow as tf
from absl import app, flags

import focal_dist
from focal_dist.configs import images as images_config
from focal_dist.configs import segmentation as segmentation_config
from focal_dist.distribute import get_backend
from focal_dist.tasks.classification import ClassificationTask
from focal_dist.tasks.segmentation import SegmentationTask

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_images", 2000, "PNG images (and, for segmentation, masks).")
flags.DEFINE_integer("size", 64, "Side of the images.")
flags.DEFINE_integer("repeats", 5, "Timed passes per row; the median is kept.")
flags.DEFINE_string("data_dir", "/tmp/focal_dist_bench_precheck", "Where the files are.")

CLASSES = ("a", "b", "c", "d")


def _picture(rng, i: int) -> np.ndarray:
    ramp = np.linspace(0, 1, FLAGS.size, dtype=np.float32)
    square = np.outer(ramp, ramp)
    base = np.stack([square, np.outer(ramp[::-1], ramp), np.full_like(square, i % 97 / 97)], -1)
    return np.clip(base * 200 + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def write_files() -> tuple[str, str]:
    """(image folder, segmentation folder), written once per size and count."""
    root = os.path.join(FLAGS.data_dir, f"{FLAGS.num_images}x{FLAGS.size}")
    folder, pairs = os.path.join(root, "images"), os.path.join(root, "pairs")
    if os.path.exists(os.path.join(root, "done")):
        return folder, pairs
    rng = np.random.default_rng(0)
    for name in CLASSES:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(pairs, sub), exist_ok=True)
    for i in range(FLAGS.num_images):
        png = tf.io.encode_png(_picture(rng, i)).numpy()
        with open(os.path.join(folder, CLASSES[i % 4], f"{i:05d}.png"), "wb") as handle:
            handle.write(png)
        with open(os.path.join(pairs, "images", f"{i:05d}.png"), "wb") as handle:
            handle.write(png)
        mask = np.zeros((FLAGS.size, FLAGS.size, 1), np.uint8)
        mask[: FLAGS.size // 2, : FLAGS.size // 2] = 1 + i % 2
        mask[-4:] = 255
        tf.io.write_file(os.path.join(pairs, "masks", f"{i:05d}.png"), tf.io.encode_png(mask))
    open(os.path.join(root, "done"), "w").close()
    return folder, pairs


def _timed(run) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of the process) of `run()`."""
    run()
    walls, cpus = [], []
    for _ in range(FLAGS.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def plain(paths: list[str], masks: list[str] | None = None):
    def decode(path):
        return tf.shape(tf.io.decode_png(tf.io.read_file(path), channels=3))[0]

    def decode_pair(path, mask_path):
        mask = tf.io.decode_png(tf.io.read_file(mask_path), channels=1)
        counts = tf.math.bincount(tf.cast(mask, tf.int32), minlength=3, maxlength=3)
        return decode(path) + tf.reduce_sum(counts)

    files = tf.data.Dataset.from_tensor_slices(paths if masks is None else (paths, masks))
    dataset = files.map(decode if masks is None else decode_pair, tf.data.AUTOTUNE)
    return lambda: dataset.reduce(tf.constant(0), lambda total, n: total + n).numpy()


def _row(name: str, plain_pass: tuple[float, float], prepare: tuple[float, float]) -> None:
    """Times, and the ratio of CPU seconds (plain / prepare): steadier than wall time on
    a shared machine."""
    times = " | ".join(f"{t:.2f}" for t in (*plain_pass, *prepare))
    print(f"| {name} | {times} | {plain_pass[1] / prepare[1]:.2f}x |", flush=True)


def main(argv):
    del argv
    folder, pairs = write_files()
    backend = get_backend("default")
    print(f"focal_dist from {os.path.dirname(focal_dist.__file__)}; TensorFlow {tf.__version__}")
    print(f"{FLAGS.num_images} PNGs of {FLAGS.size}x{FLAGS.size}; load {os.getloadavg()[0]:.1f}")
    print("| pass | plain wall (s) | plain CPU (s) | prepare wall (s) | prepare CPU (s) | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")

    config = images_config.get_config()
    config.data.path, config.data.image_size = folder, FLAGS.size
    task = ClassificationTask(config)
    paths = task.source.splits["train"].reader.paths
    _row("image_folder", _timed(plain(paths)), _timed(lambda: task.prepare(backend)))

    config = segmentation_config.get_config()
    config.data.source, config.data.path = "segmentation_folder", pairs
    config.data.channels, config.data.image_size = 3, FLAGS.size
    task = SegmentationTask(config)
    reader = task.source.readers["train"]
    plain_pass = _timed(plain(reader.images, reader.masks))
    _row("segmentation_folder", plain_pass, _timed(lambda: task.prepare(backend)))
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    app.run(main)
