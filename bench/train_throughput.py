"""Examples/s of focal_dist's training loop against Keras 3 `model.fit`, like for like.

Same model (the default MLP), same data (the default synthetic set, in memory), same
global batch, loss (Keras's BinaryFocalCrossentropy settings: gamma 2, alpha 0.25, no
class weights) and optimizer (Adam), under the default strategy and under
MirroredStrategy over 2 logical CPU devices. Four cells per strategy pair:

    fit, steps_per_execution=1            vs  ours, steps_per_loop=1
    fit, steps_per_execution=K + jit      vs  ours, steps_per_loop=K + XLA

`fit` gets jit_compile=True wherever it can compile (not under MirroredStrategy: XLA
refuses a variable on another device). Every loop is built and warmed up once; the
timed chunks then alternate fit, ours, fit, ours (--repeats times) and each cell keeps
its median, so the machine's load drifts over both sides alike.

With --inputs=same (first table rows) both loops read the same cached batches, so the
ratio is the loops' alone; with --inputs=task ours reads the task's own input pipeline
(shuffled, as `python -m focal_dist.train` does), fit the cached unshuffled batches.

--data=images trains a convolutional model (--model=cnn, efficientnet_b0 or resnet50,
Keras Applications with weights=None) on image TFRecords (bench/image_files.py) with
binary labels: the decoded, augmented images are cached once and both loops read them
(--inputs=same; the image pipeline alone is bench/image_pipeline.py).

    .venv/bin/python bench/train_throughput.py [--steps=600] [--repeats=3] [--k=50]
    .venv/bin/python bench/train_throughput.py --data=images --model=cnn \
        --global_batch_size=64 --steps=40 --k=10 --inputs=same
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import tensorflow as tf

# Two logical CPU devices for MirroredStrategy, before TensorFlow initialises.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import image_files  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from focal_dist.configs import default as default_config  # noqa: E402
from focal_dist.configs import images as images_config  # noqa: E402
from focal_dist.distribute import get_backend  # noqa: E402
from focal_dist.tasks.classification import ClassificationTask  # noqa: E402
from focal_dist.training.trainer import Trainer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 600, "Timed steps per chunk (a multiple of --k).")
flags.DEFINE_integer("repeats", 3, "Alternating chunks per cell; the median is kept.")
flags.DEFINE_integer("k", 50, "steps_per_execution of fit and steps_per_loop of ours.")
flags.DEFINE_integer("global_batch_size", 256, "Global batch size.")
flags.DEFINE_integer("num_train", 16384, "Synthetic training examples (cached in memory).")
flags.DEFINE_list("hidden_units", ["64", "32"], "MLP widths.")
flags.DEFINE_bool(
    "xla", True, "K column: XLA for both (convolutions on CPU are faster without it)."
)
flags.DEFINE_enum("data", "synthetic", ["synthetic", "images"], "The default set or images.")
flags.DEFINE_string("model", "mlp", "config.model.name (cnn etc. with --data=images).")
flags.DEFINE_integer("image_size", 32, "--data=images: side of the resized images.")
flags.DEFINE_integer("num_images", 2048, "--data=images: images written and cached.")
flags.DEFINE_string("data_dir", "/tmp/focal_dist_bench", "--data=images: where they are.")
flags.DEFINE_list("strategies", ["default", "mirrored"], "default and/or mirrored (x2).")
flags.DEFINE_string("results", None, "Also write the table's cells (examples/s) to this JSON file.")
flags.DEFINE_list(
    "inputs",
    ["same", "task"],
    "same: both loops read the same cached global batches; task: ours reads the task's "
    "own pipeline (in memory, shuffled, split per replica), fit the cache.",
)


def config_for(steps_per_loop: int, jit: bool):
    if FLAGS.data == "images":
        config = images_config.get_config()
        config.task.name = "binary"
        config.task.num_classes = 1
        config.data.source = "image_tfrecord"
        config.data.path = image_files.write(FLAGS.data_dir, FLAGS.num_images)
        config.data.image_size = FLAGS.image_size
        config.loss.alpha = 0.25
    else:
        config = default_config.get_config()
        config.data.synthetic.num_train = FLAGS.num_train
        config.model.hidden_units = tuple(int(u) for u in FLAGS.hidden_units)
    config.model.name = FLAGS.model
    config.train.global_batch_size = FLAGS.global_batch_size
    config.train.steps_per_loop = steps_per_loop
    config.train.jit_compile = jit
    config.loss.class_weights = "none"
    config.optimizer.decay = "constant"
    config.optimizer.warmup_steps = 0
    config.train.steps = 10**6
    return config


def ours(backend, steps_per_loop: int, jit: bool, cached):
    """A function timing FLAGS.steps steps of our loop as the controller calls it.

    `cached`: the in-memory (x, y) that fit reads, batched per replica and cached, or
    None for the task's own pipeline.
    """
    config = config_for(steps_per_loop, jit)
    task = ClassificationTask(config)
    trainer = Trainer(config=config, task=task, backend=backend, workdir=tempfile.mkdtemp())
    if cached is None:
        dataset_fn = task.train_dataset
    else:
        # Consecutive per-replica batches make the same global batches fit reads.
        def dataset_fn(info):
            return batches(*cached, info.per_replica_batch_size)

    iterator = iter(backend.distribute_dataset(dataset_fn, config.train.global_batch_size))
    num_steps = tf.constant(steps_per_loop)

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps // steps_per_loop):
            # As the controller does: the per-step losses come back to the host per call.
            trainer.step.train_loop(iterator, num_steps)[0].numpy()
        return steps * FLAGS.global_batch_size / (time.perf_counter() - start)

    run(max(num_examples() // FLAGS.global_batch_size + 10, 2 * steps_per_loop))  # warm up
    return run


def num_examples() -> int:
    return FLAGS.num_images if FLAGS.data == "images" else FLAGS.num_train


def in_memory_examples():
    """The task's training examples as NumPy (x, y), whole global batches only."""
    task = ClassificationTask(config_for(1, False))
    info = get_backend("default").input_info(FLAGS.global_batch_size)
    taken = list(task.train_dataset(info).take(num_examples() // FLAGS.global_batch_size))
    return (
        np.concatenate([b[0].numpy() for b in taken]),
        np.concatenate([b[1].numpy() for b in taken]),
    )


def batches(x, y, batch_size: int) -> tf.data.Dataset:
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(batch_size, drop_remainder=True)
        .cache()
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )


class _Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def keras_fit(strategy, steps_per_execution: int, jit: bool, examples):
    """A function timing FLAGS.steps steps of model.fit (one epoch of that many steps)."""
    config = config_for(1, False)
    task = ClassificationTask(config)
    dataset = batches(*examples, FLAGS.global_batch_size)
    with strategy.scope():
        model = task.build_model()
        model.compile(
            optimizer=keras.optimizers.Adam(config.optimizer.learning_rate),
            loss=keras.losses.BinaryFocalCrossentropy(gamma=2.0, alpha=0.25, from_logits=True),
            steps_per_execution=steps_per_execution,
            jit_compile=jit,
        )

    def run(steps: int) -> float:
        timer = _Timer()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer])
        return steps * FLAGS.global_batch_size / timer.seconds

    run(2 * steps_per_execution)  # trace, compile, warm up
    return run


def model_name() -> str:
    if FLAGS.data == "images":
        return f"{FLAGS.model} on {FLAGS.image_size}x{FLAGS.image_size} images"
    return f"MLP {FLAGS.hidden_units}"


def alternate(fit_run, ours_run) -> tuple[float, float]:
    fits, ourss = [], []
    for _ in range(FLAGS.repeats):
        fits.append(fit_run(FLAGS.steps))
        ourss.append(ours_run(FLAGS.steps))
    return statistics.median(fits), statistics.median(ourss)


def main(argv):
    del argv
    k = FLAGS.k
    if FLAGS.steps % k:
        raise ValueError(f"--steps={FLAGS.steps} must be a multiple of --k={k}")
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; batch "
        f"{FLAGS.global_batch_size}, {model_name()}, {FLAGS.steps} steps x "
        f"{FLAGS.repeats} alternating chunks; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    print(
        f"| strategy | fit, spe=1 | ours, spl=1 | ratio | fit, spe={k}"
        f"{' (+jit where fit can)' if FLAGS.xla else ''} "
        f"| ours, spl={k}{' + XLA' if FLAGS.xla else ''} | ratio |\n"
        "| --- | --- | --- | --- | --- | --- | --- |",
        flush=True,
    )
    examples = in_memory_examples()
    cells = []
    for name in FLAGS.strategies:
        backend = get_backend(name, **({"num_cpu_devices": 2} if name == "mirrored" else {}))
        fit_jit = FLAGS.xla and name == "default"
        for input_name in FLAGS.inputs:
            cached = examples if input_name == "same" else None
            fit1, ours1 = alternate(
                keras_fit(backend.strategy, 1, False, examples), ours(backend, 1, False, cached)
            )
            fitk, oursk = alternate(
                keras_fit(backend.strategy, k, fit_jit, examples),
                ours(backend, k, FLAGS.xla, cached),
            )
            label = "default" if name == "default" else "Mirrored, 2 logical CPUs"
            print(
                f"| {label}, input {input_name} | {fit1:,.0f} | {ours1:,.0f} | "
                f"{ours1 / fit1:.2f}x | {fitk:,.0f}{' (jit)' if fit_jit else ''} | "
                f"{oursk:,.0f} | {oursk / fitk:.2f}x |",
                flush=True,
            )
            cells.append(
                {
                    "strategy": name,
                    "inputs": input_name,
                    "k": k,
                    "xla": FLAGS.xla,
                    "fit_jit": fit_jit,
                    "fit_1": fit1,
                    "ours_1": ours1,
                    "fit_k": fitk,
                    "ours_k": oursk,
                }
            )
    if FLAGS.results:
        with open(FLAGS.results, "w") as handle:
            json.dump(cells, handle, indent=1)
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    app.run(main)
