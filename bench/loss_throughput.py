"""Forward + backward throughput of focal_dist's focal losses against Keras 3's.

Same inputs, same process, measured side by side: for each loss, size and mode (graph,
XLA) it times `loss -> sum -> gradient w.r.t. the logits` and prints elements/s and the
ratio ours / Keras. Timings are noisy on a shared 2-core machine: read the ratios.

    .venv/bin/python bench/loss_throughput.py [--sizes=16,20,22] [--repeats=20]
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from focal_dist import losses as fl

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["16", "20", "22"], "log2 of the number of elements.")
flags.DEFINE_integer("repeats", 20, "Timed calls per measurement (the median is kept).")
flags.DEFINE_integer("num_classes", 8, "Size of the class axis.")
flags.DEFINE_float("gamma", 2.0, "Focusing parameter for both implementations.")

LOSSES = {
    "binary": (
        lambda y, x: fl.binary_focal_crossentropy(y, x, gamma=FLAGS.gamma, from_logits=True),
        lambda y, x: keras.losses.binary_focal_crossentropy(
            y, x, gamma=FLAGS.gamma, from_logits=True
        ),
    ),
    "categorical": (
        lambda y, x: fl.categorical_focal_crossentropy(y, x, gamma=FLAGS.gamma, from_logits=True),
        lambda y, x: keras.losses.categorical_focal_crossentropy(
            y, x, gamma=FLAGS.gamma, from_logits=True
        ),
    ),
}


def _inputs(kind: str, num_elements: int):
    rng = np.random.default_rng(0)
    rows = num_elements // FLAGS.num_classes
    logits = rng.normal(scale=3.0, size=(rows, FLAGS.num_classes)).astype(np.float32)
    if kind == "binary":
        labels = (rng.random((rows, FLAGS.num_classes)) < 0.1).astype(np.float32)
    else:
        labels = np.eye(FLAGS.num_classes, dtype=np.float32)[
            rng.integers(0, FLAGS.num_classes, rows)
        ]
    return tf.constant(labels), tf.constant(logits)


def _step(loss_fn, jit_compile: bool):
    @tf.function(jit_compile=jit_compile)
    def forward_backward(labels, logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            total = tf.reduce_sum(loss_fn(labels, logits))
        return total, tape.gradient(total, logits)

    return forward_backward


def _seconds_per_call(step, labels, logits, repeats: int) -> float:
    for _ in range(3):  # trace, compile, warm caches
        step(labels, logits)[1].numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(labels, logits)[1].numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv):
    del argv
    logging.info(
        "TensorFlow %s, Keras %s, %d threads", tf.__version__, keras.__version__, os.cpu_count()
    )
    header = (
        f"{'loss':<12}{'elements':>10}{'mode':>7}{'ours el/s':>14}{'keras el/s':>14}{'ratio':>8}"
    )
    print(header)
    print("-" * len(header))
    for kind, (ours_fn, keras_fn) in LOSSES.items():
        for log2 in (int(s) for s in FLAGS.sizes):
            labels, logits = _inputs(kind, 2**log2)
            n = int(np.prod(logits.shape))
            for mode, jit in (("graph", False), ("xla", True)):
                # Alternate the two so that drift in machine load hits both alike.
                ours_t, keras_t = [], []
                for _ in range(3):
                    ours_t.append(
                        _seconds_per_call(
                            _step(ours_fn, jit), labels, logits, FLAGS.repeats // 3 + 1
                        )
                    )
                    keras_t.append(
                        _seconds_per_call(
                            _step(keras_fn, jit), labels, logits, FLAGS.repeats // 3 + 1
                        )
                    )
                ours, theirs = min(ours_t), min(keras_t)
                print(
                    f"{kind:<12}{'2^' + str(log2):>10}{mode:>7}{n / ours:>14.3e}"
                    f"{n / theirs:>14.3e}{theirs / ours:>7.2f}x",
                    flush=True,
                )


if __name__ == "__main__":
    app.run(main)
