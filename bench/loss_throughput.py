"""Forward + backward throughput of focal_dist's losses against Keras 3's and our own.

Same inputs, same process, measured side by side: for each loss, size and mode (graph,
XLA) it times `loss -> sum -> gradient w.r.t. the logits` and prints elements/s and a
ratio. Two tables:

* `keras`: our binary and categorical focal losses against Keras 3's (ratio ours / Keras);
* `variants`: the imbalance losses (per-output alpha, FLSD-53, Poly-1, ASL, logit
  adjustment) against our plain focal loss of the same kind (ratio variant / plain;
  the goal is >= 0.9x at 2^22 elements with XLA).

Timings are noisy on a shared 2-core machine: run it on a quiet one and read the ratios.
`--count_ops` prints instead what XLA compiles for each row (the optimized HLO of the same
step), which does not depend on the machine's load: per element, how many exp, log,
log1p, divide and power instructions run, and how many element-sized buffers pass
between fusions (each one a write and at least one read of the whole tensor).

    .venv/bin/python bench/loss_throughput.py [--sizes=16,20,22] [--repeats=20]
        [--tables=keras,variants] [--modes=graph,xla] [--variants=asl,"asl detach"]
    .venv/bin/python bench/loss_throughput.py --tables=variants --sizes=22 --count_ops
    .venv/bin/python bench/loss_throughput.py --sizes=10 --repeats=1   # a smoke run
"""

from __future__ import annotations

import collections
import os
import re
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
flags.DEFINE_list("tables", ["keras", "variants"], "Which tables to print: keras, variants.")
flags.DEFINE_list("modes", ["graph", "xla"], "graph (tf.function) and/or xla (jit_compile).")
flags.DEFINE_list("variants", None, "Rows of the variants table to run (default: all).")
flags.DEFINE_bool("count_ops", False, "Print XLA's per-element op counts instead of timing.")

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


def _focal(kind):
    """Our plain focal loss of this kind: the baseline of the variants table."""
    function = {
        "binary": fl.binary_focal_crossentropy,
        "categorical": fl.categorical_focal_crossentropy,
        "sparse": fl.sparse_categorical_focal_crossentropy,
    }[kind]
    return lambda y, x, **kwargs: function(y, x, gamma=FLAGS.gamma, from_logits=True, **kwargs)


def _prior():
    """A long tail over the classes: log pi and the positive rate of each output."""
    counts = 0.5 ** np.arange(FLAGS.num_classes)
    return np.log(counts / counts.sum()), np.clip(counts / 2, 1e-3, 0.5)


# name -> (kind of labels, loss): each against _focal(kind) on the same inputs.
VARIANTS = {
    "alpha/output": (
        "binary",
        lambda y, x: _focal("binary")(
            y, x, alpha=np.linspace(0.1, 0.9, FLAGS.num_classes), apply_class_balancing=True
        ),
    ),
    "bin+flsd53": ("binary", lambda y, x: _focal("binary")(y, x, gamma_schedule="flsd53")),
    "bin+poly1": ("binary", lambda y, x: _focal("binary")(y, x, poly_epsilon=1.0)),
    "asl": ("binary", lambda y, x: fl.asymmetric_loss(y, x, from_logits=True)),
    "asl detach": (
        "binary",
        lambda y, x: fl.asymmetric_loss(y, x, from_logits=True, detach_focusing=True),
    ),
    "la binary": (
        "binary",
        lambda y, x: fl.logit_adjusted_binary_crossentropy(y, x, positive_rate=_prior()[1]),
    ),
    "cat+flsd53": (
        "categorical",
        lambda y, x: _focal("categorical")(y, x, gamma_schedule="flsd53"),
    ),
    "cat+poly1": ("categorical", lambda y, x: _focal("categorical")(y, x, poly_epsilon=1.0)),
    "sparse+flsd53": ("sparse", lambda y, x: _focal("sparse")(y, x, gamma_schedule="flsd53")),
    "la softmax": (
        "sparse",
        lambda y, x: fl.logit_adjusted_crossentropy(y, x, log_prior=_prior()[0]),
    ),
}


def _inputs(kind: str, num_elements: int):
    rng = np.random.default_rng(0)
    rows = max(num_elements // FLAGS.num_classes, 1)
    logits = rng.normal(scale=3.0, size=(rows, FLAGS.num_classes)).astype(np.float32)
    ids = rng.integers(0, FLAGS.num_classes, rows)
    if kind == "binary":
        labels = (rng.random((rows, FLAGS.num_classes)) < 0.1).astype(np.float32)
    elif kind == "sparse":
        labels = ids
    else:
        labels = np.eye(FLAGS.num_classes, dtype=np.float32)[ids]
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


def _side_by_side(first_fn, second_fn, labels, logits, jit: bool):
    """Best-of-3 seconds per call of each, alternated so that drift hits both alike."""
    first, second = [], []
    repeats = FLAGS.repeats // 3 + 1
    for _ in range(3):
        first.append(_seconds_per_call(_step(first_fn, jit), labels, logits, repeats))
        second.append(_seconds_per_call(_step(second_fn, jit), labels, logits, repeats))
    return min(first), min(second)


# HLO opcodes XLA's fusion pass will not duplicate into a second consumer (its
# IsExpensive): a transcendental or a division per element, and a buffer when shared.
EXPENSIVE = ("exponential", "log", "log-plus-one", "divide", "power", "tanh", "logistic")


def _op_counts(loss_fn, labels, logits):
    """(expensive op -> count per element, element-sized buffers between fusions) under XLA."""
    hlo = _step(loss_fn, True).experimental_get_compiler_ir(labels, logits)(stage="optimized_hlo")
    dims = ",".join(str(d) for d in logits.shape)
    element = re.escape(f"f32[{dims}]") + r"\{[0-9,]*\} "
    counts = collections.Counter(re.findall(element + r"([a-z-]+)\(", hlo))
    entry = hlo[hlo.index("\nENTRY") :]
    # Every element-sized fusion output in the entry computation but the returned gradient.
    buffers = len(re.findall(r"= " + element + "fusion\\(", entry)) - 1
    return {op: counts[op] for op in EXPENSIVE if counts[op]}, buffers


def _count_table(title, rows):
    print(f"{'loss':<20}{'elements':>10}  expensive ops per element (intermediate buffers)")
    references = set()
    for name, kind, fn, reference_fn in rows:
        for log2 in (int(s) for s in FLAGS.sizes):
            labels, logits = _inputs(kind, 2**log2)
            pairs = [(name, fn)]
            if (kind, log2) not in references:  # the same baseline for every row of its kind
                references.add((kind, log2))
                pairs.append((f"{title} ({kind})", reference_fn))
            for label, loss_fn in pairs:
                ops, buffers = _op_counts(loss_fn, labels, logits)
                listed = ", ".join(f"{op} {n}" for op, n in ops.items())
                print(f"{label:<20}{'2^' + str(log2):>10}  {listed} ({buffers})", flush=True)
    print()


def _table(title, rows):
    """rows: (name, kind, fn, reference_fn); prints fn's and the reference's el/s and ratio."""
    if FLAGS.count_ops:
        return _count_table(title, rows)
    header = f"{'loss':<14}{'elements':>10}{'mode':>7}{'el/s':>12}{title + ' el/s':>16}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    modes = [(mode, mode == "xla") for mode in ("graph", "xla") if mode in FLAGS.modes]
    for name, kind, fn, reference_fn in rows:
        for log2 in (int(s) for s in FLAGS.sizes):
            labels, logits = _inputs(kind, 2**log2)
            n = int(np.prod(logits.shape))
            for mode, jit in modes:
                ours, theirs = _side_by_side(fn, reference_fn, labels, logits, jit)
                print(
                    f"{name:<14}{'2^' + str(log2):>10}{mode:>7}{n / ours:>12.3e}"
                    f"{n / theirs:>16.3e}{theirs / ours:>7.2f}x",
                    flush=True,
                )
    print()


def main(argv):
    del argv
    logging.info(
        "TensorFlow %s, Keras %s, %d threads", tf.__version__, keras.__version__, os.cpu_count()
    )
    if "keras" in FLAGS.tables:
        rows = [(kind, kind, ours, theirs) for kind, (ours, theirs) in LOSSES.items()]
        _table("keras", rows)
    if "variants" in FLAGS.tables:
        names = FLAGS.variants or list(VARIANTS)
        unknown = sorted(set(names) - set(VARIANTS))
        if unknown:
            raise app.UsageError(
                f"--variants: unknown {unknown}, expected some of {list(VARIANTS)}"
            )
        rows = [(name, *VARIANTS[name], _focal(VARIANTS[name][0])) for name in names]
        _table("focal", rows)


if __name__ == "__main__":
    app.run(main)
