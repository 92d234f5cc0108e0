"""Examples/s of focal_dist's training loop against Keras 3 `model.fit`.

Same model (the default MLP), same data (the default synthetic set, in memory), same
global batch and loss (Keras's BinaryFocalCrossentropy settings: gamma 2, alpha 0.25,
no class weights), Adam; under the default strategy and under MirroredStrategy over 2
logical CPU devices. Ours runs with steps_per_loop=1 (like fit's steps_per_execution=1)
and with steps_per_loop=50 + XLA. Prints examples/s and ratios ours / model.fit.

    .venv/bin/python bench/train_throughput.py [--steps=300] [--global_batch_size=256]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import tensorflow as tf

# Two logical CPU devices for MirroredStrategy, before TensorFlow initialises.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from configs import default as default_config  # noqa: E402
from focal_dist.distribute import get_backend  # noqa: E402
from focal_dist.training.task import ClassificationTask  # noqa: E402
from focal_dist.training.trainer import Trainer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 300, "Timed steps per measurement.")
flags.DEFINE_integer("global_batch_size", 256, "Global batch size.")
flags.DEFINE_integer("num_train", 16384, "Synthetic training examples (cached in memory).")


def _config(steps_per_loop: int, jit: bool):
    config = default_config.get_config()
    config.train.global_batch_size = FLAGS.global_batch_size
    config.train.steps_per_loop = steps_per_loop
    config.train.jit_compile = jit
    config.data.synthetic.num_train = FLAGS.num_train
    config.data.shuffle_buffer = 0
    config.loss.class_weights = "none"
    config.train.steps = 10**6
    return config


def ours(backend, steps_per_loop: int, jit: bool) -> float:
    config = _config(steps_per_loop, jit)
    task = ClassificationTask(config)
    trainer = Trainer(config, task, backend, tempfile.mkdtemp())
    trainer._build_functions()
    iterator = iter(
        backend.distribute_dataset(
            lambda info: task.train_dataset(info), config.train.global_batch_size
        )
    )
    epoch_steps = FLAGS.num_train // FLAGS.global_batch_size + 1
    warmup = max(steps_per_loop, epoch_steps + 10)  # fills the cache, traces, compiles
    done = 0
    while done < warmup:
        trainer.step.train_loop(iterator, tf.constant(steps_per_loop))[0].numpy()
        done += steps_per_loop
    loops = max(FLAGS.steps // steps_per_loop, 1)
    start = time.perf_counter()
    for _ in range(loops):
        trainer.step.train_loop(iterator, tf.constant(steps_per_loop))[0].numpy()
    return loops * steps_per_loop * FLAGS.global_batch_size / (time.perf_counter() - start)


def keras_fit(strategy) -> float:
    config = _config(1, False)
    task = ClassificationTask(config)
    features, labels = [], []
    for x, y in task.train_dataset(get_backend("default").input_info(FLAGS.global_batch_size)).take(
        FLAGS.num_train // FLAGS.global_batch_size
    ):
        features.append(x.numpy())
        labels.append(y.numpy())
    x, y = np.concatenate(features), np.concatenate(labels)
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(FLAGS.global_batch_size, drop_remainder=True)
        .cache()
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    with strategy.scope():
        model = task.build_model()
        model.compile(
            optimizer=keras.optimizers.Adam(config.optimizer.learning_rate),
            loss=keras.losses.BinaryFocalCrossentropy(gamma=2.0, alpha=0.25, from_logits=True),
        )
    model.fit(dataset, steps_per_epoch=50, epochs=1, verbose=0)  # trace, warm up

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    timer = Timer()
    model.fit(dataset, steps_per_epoch=FLAGS.steps, epochs=1, verbose=0, callbacks=[timer])
    return FLAGS.steps * FLAGS.global_batch_size / timer.seconds


def main(argv):
    del argv
    logging.info("TensorFlow %s, Keras %s", tf.__version__, keras.__version__)
    rows = []
    for name, backend_options in (("default", {}), ("mirrored x2", {"num_cpu_devices": 2})):
        backend = get_backend("mirrored" if backend_options else "default", **backend_options)
        fit = keras_fit(backend.strategy)
        plain = ours(backend, 1, False)
        fused = ours(backend, 50, True)
        rows.append((name, fit, plain, fused))
        print(
            f"{name:<12} model.fit {fit:>9.0f} ex/s | ours {plain:>9.0f} ex/s "
            f"({plain / fit:.2f}x) | ours steps_per_loop=50+XLA {fused:>9.0f} ex/s "
            f"({fused / fit:.2f}x)",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
