"""Segmentation throughput: our loop against Keras 3 `model.fit`, and the mask pipeline
against a plain tf.data decode.

Loops (--part=loop): the same U-Net (models/unet.py, BatchNormalization per replica on
both sides), the same cached synthetic images and masks (255 ignored), the same loss
(per-pixel softmax focal loss, gamma 2, ignore_class 255, no class weights, divided by
the valid pixels of the global batch: fit gets focal_dist's
SparseCategoricalFocalCrossentropy(reduction="global_mean")) and optimizer (Adam),
under the default strategy and MirroredStrategy over 2 logical CPUs:

    fit, steps_per_execution=1            vs  ours, steps_per_loop=1
    fit, steps_per_execution=K (+ jit)    vs  ours, steps_per_loop=K (+ XLA with --xla)

fit gets jit_compile only on one device (under MirroredStrategy on logical CPUs XLA
refuses a variable on another device). Chunks alternate fit, ours (--repeats times) and
each cell keeps its median.

Pipeline (--part=pipeline): PNG pairs written to --data_dir; images/s of
(a) our training input (read, decode, check, bilinear and nearest resize, batch;
--augment adds the one crop + flip of both) against the same steps in plain tf.data
without the checks;
(b) our pixel-histogram pass (decode and check each mask, read its image's size from
the header, count valid pixels) against a plain decode + bincount of the masks.

    .venv/bin/python bench/segmentation_throughput.py [--steps=100] [--repeats=3] [--k=10]
    .venv/bin/python bench/segmentation_throughput.py --steps=4 --k=2 --repeats=1 \
        --num_train=32 --num_images=32 --widths=4,8     # a smoke run, not a measurement

Measure on a quiet machine: the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from focal_dist import losses  # noqa: E402
from focal_dist.configs import segmentation as segmentation_config  # noqa: E402
from focal_dist.data import get_source  # noqa: E402
from focal_dist.distribute import InputInfo, get_backend  # noqa: E402
from focal_dist.tasks.segmentation import SegmentationTask  # noqa: E402
from focal_dist.training.trainer import Trainer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("part", ["loop", "pipeline"], "loop and/or pipeline.")
flags.DEFINE_integer("steps", 100, "Timed steps per chunk (a multiple of --k).")
flags.DEFINE_integer("repeats", 3, "Alternating chunks per cell; the median is kept.")
flags.DEFINE_integer("k", 10, "steps_per_execution of fit and steps_per_loop of ours.")
flags.DEFINE_integer("global_batch_size", 32, "Global batch size.")
flags.DEFINE_integer("image_size", 32, "Side of the images.")
flags.DEFINE_integer("num_train", 512, "Synthetic training images (cached in memory).")
flags.DEFINE_list("widths", ["16", "32", "64"], "U-Net widths.")
flags.DEFINE_bool("xla", False, "K column: XLA for both (convolutions on CPU: often slower).")
flags.DEFINE_list("strategies", ["default", "mirrored"], "default and/or mirrored (x2).")
flags.DEFINE_integer("num_images", 512, "pipeline: PNG pairs written.")
flags.DEFINE_integer("file_size", 128, "pipeline: side of the written images.")
flags.DEFINE_string("data_dir", "/tmp/focal_dist_bench_seg", "pipeline: where they are.")
flags.DEFINE_bool("augment", False, "pipeline: ours crops and flips (the plain one never).")


def config_for(steps_per_loop: int = 1, jit: bool = False, source="segmentation_synthetic"):
    config = segmentation_config.get_config()
    config.data.source = source
    config.data.image_size = FLAGS.image_size
    config.data.synthetic.num_train = FLAGS.num_train
    config.model.widths = tuple(int(w) for w in FLAGS.widths)
    config.loss.class_weights = "none"
    config.loss.dice_weight = 0.0
    config.task.eval_images = 0
    config.optimizer.decay, config.optimizer.warmup_steps = "constant", 0
    config.train.global_batch_size = FLAGS.global_batch_size
    config.train.steps_per_loop, config.train.jit_compile = steps_per_loop, jit
    config.train.allreduce = "single"
    config.train.steps = 10**6
    return config


def cached_batches(batch_size: int) -> tf.data.Dataset:
    x, y = examples()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size, drop_remainder=True)
    return dataset.cache().repeat().prefetch(tf.data.AUTOTUNE)


def examples():
    source = get_source(config_for().data, label_mode="sparse", num_classes=3)
    return source.splits["train"]


def ours(backend, steps_per_loop: int, jit: bool):
    config = config_for(steps_per_loop, jit)
    task = SegmentationTask(config)
    trainer = Trainer(config=config, task=task, backend=backend, workdir=tempfile.mkdtemp())
    iterator = iter(
        backend.distribute_dataset(
            lambda info: cached_batches(info.per_replica_batch_size), FLAGS.global_batch_size
        )
    )
    num_steps = tf.constant(steps_per_loop)

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps // steps_per_loop):
            trainer.step.train_loop(iterator, num_steps)[0].numpy()
        return steps * FLAGS.global_batch_size / (time.perf_counter() - start)

    run(2 * steps_per_loop)
    return run


class _Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def keras_fit(strategy, steps_per_execution: int, jit: bool):
    config = config_for()
    task = SegmentationTask(config)
    dataset = cached_batches(FLAGS.global_batch_size)
    with strategy.scope():
        model = task.build_model()
        model.compile(
            optimizer=keras.optimizers.Adam(config.optimizer.learning_rate),
            loss=losses.SparseCategoricalFocalCrossentropy(
                gamma=2.0, from_logits=True, ignore_class=255, reduction="global_mean"
            ),
            steps_per_execution=steps_per_execution,
            jit_compile=jit,
        )

    def run(steps: int) -> float:
        timer = _Timer()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer])
        return steps * FLAGS.global_batch_size / timer.seconds

    run(2 * steps_per_execution)
    return run


def alternate(first, second) -> tuple[float, float]:
    a, b = [], []
    for _ in range(FLAGS.repeats):
        a.append(first(FLAGS.steps))
        b.append(second(FLAGS.steps))
    return statistics.median(a), statistics.median(b)


def loop_table():
    k = FLAGS.k
    print(
        f"U-Net {FLAGS.widths} on {FLAGS.image_size}x{FLAGS.image_size}, batch "
        f"{FLAGS.global_batch_size}, {FLAGS.steps} steps x {FLAGS.repeats}\n"
        f"| strategy | fit, spe=1 | ours, spl=1 | ratio | fit, spe={k} | ours, spl={k} | ratio |"
        "\n| --- | --- | --- | --- | --- | --- | --- |",
        flush=True,
    )
    for name in FLAGS.strategies:
        backend = get_backend(name, **({"num_cpu_devices": 2} if name == "mirrored" else {}))
        fit_jit = FLAGS.xla and name == "default"
        fit1, ours1 = alternate(keras_fit(backend.strategy, 1, False), ours(backend, 1, False))
        fitk, oursk = alternate(
            keras_fit(backend.strategy, k, fit_jit), ours(backend, k, FLAGS.xla)
        )
        print(
            f"| {name} | {fit1:,.0f} | {ours1:,.0f} | {ours1 / fit1:.2f}x | "
            f"{fitk:,.0f}{' (jit)' if fit_jit else ''} | {oursk:,.0f} | {oursk / fitk:.2f}x |",
            flush=True,
        )


def write_pairs(directory: str, count: int, size: int) -> str:
    root = os.path.join(directory, f"pairs_{count}_{size}")
    if os.path.isdir(os.path.join(root, "masks")):
        return root
    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "masks"))
    rng = np.random.default_rng(0)
    for i in range(count):
        mask = np.zeros((size, size, 1), np.uint8)
        top, left = rng.integers(0, size - size // 8, 2)
        mask[top : top + size // 8, left : left + size // 8] = 1 + i % 2
        mask[: size // 10] = 255
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        for name, array in (("images", image), ("masks", mask)):
            path = os.path.join(root, name, f"{i:05d}.png")
            tf.io.write_file(path, tf.io.encode_png(array))
    return root


def images_per_second(dataset: tf.data.Dataset, count: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        seen = 0
        for features, _ in dataset:
            seen += int(features.shape[0])
            if seen >= count:
                break
        rates.append(seen / (time.perf_counter() - start))
    return statistics.median(rates)


def pipeline_table():
    root = write_pairs(FLAGS.data_dir, FLAGS.num_images, FLAGS.file_size)
    config = config_for(source="segmentation_folder")
    config.data.path = root
    # Like for like: the plain pipeline does not augment (--augment times ours with it).
    config.data.augment = FLAGS.augment
    source = get_source(config.data, label_mode="sparse", num_classes=3)
    batch = FLAGS.global_batch_size
    info = InputInfo(0, 1, batch, global_batch_size=batch)
    size = (FLAGS.image_size, FLAGS.image_size)
    files = source.readers["train"]

    def plain_pair(image_path, mask_path):
        image = tf.io.decode_png(tf.io.read_file(image_path), channels=1)
        mask = tf.io.decode_png(tf.io.read_file(mask_path), channels=1)
        image = tf.image.resize(image, size) / 255.0
        return image, tf.cast(tf.image.resize(mask, size, method="nearest")[..., 0], tf.int64)

    plain = (
        tf.data.Dataset.from_tensor_slices((files.images, files.masks))
        .repeat()
        .map(plain_pair, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch)
        .prefetch(tf.data.AUTOTUNE)
    )

    def plain_counts(mask_path):
        mask = tf.io.decode_png(tf.io.read_file(mask_path), channels=1)
        return tf.math.bincount(tf.cast(mask, tf.int32), minlength=256, dtype=tf.int64)

    plain_labels = tf.data.Dataset.from_tensor_slices(files.masks).map(
        plain_counts, num_parallel_calls=tf.data.AUTOTUNE
    )
    count = FLAGS.num_images
    print(f"\n{count} PNG pairs of {FLAGS.file_size}x{FLAGS.file_size} -> {size}", flush=True)
    print("| pass | plain tf.data | ours | ratio |\n| --- | --- | --- | --- |")
    plain_rate = images_per_second(plain, count, FLAGS.repeats)
    ours_rate = images_per_second(source.train_batches(info), count, FLAGS.repeats)
    _row("training input", plain_rate, ours_rate)
    plain_rate = _label_rate(plain_labels, count)
    ours_rate = _label_rate(source.label_batches(InputInfo(0, 1, 1)), count)
    _row("pixel histogram", plain_rate, ours_rate)


def _row(name: str, plain: float, ours_rate: float) -> None:
    print(f"| {name} | {plain:,.0f} | {ours_rate:,.0f} | {ours_rate / plain:.2f}x |", flush=True)


def _label_rate(dataset: tf.data.Dataset, count: int) -> float:
    rates = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1).numpy()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv):
    del argv
    if FLAGS.steps % FLAGS.k:
        raise ValueError(f"--steps={FLAGS.steps} must be a multiple of --k={FLAGS.k}")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; load {os.getloadavg()[0]:.1f}")
    if "loop" in FLAGS.part:
        loop_table()
    if "pipeline" in FLAGS.part:
        pipeline_table()
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    app.run(main)
