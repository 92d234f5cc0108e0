"""Sliding-window inference (focal_dist.models.sliding_window) against the same windows
run by the model alone, and its peak memory on a 4096 x 4096 image.

Throughput: one image, the built-in U-Net taking one window, the same window batch on
every side, timed in turns (ours, theirs, ...), best of `repeats` kept:

    ours      sliding_window_logits in a tf.function (input [None, None, C]): cut the
              windows, run them, blend with Gaussian weights, crop
    predict   the same windows, cut beforehand in NumPy, through `model.predict` with
              batch_size = window_batch (what the goal is stated against)
    loop      the same windows through a tf.function of the model, batch by batch (the
              fastest plain Keras 3 way we know)

and the cost of overlap 0.5 against 0 (ours / ours). Memory: a fresh process infers
one `--memory_side` image and reports the growth of its peak RSS (ru_maxrss) during
inference, beside the size of one whole-image activation of the U-Net's first level.

    .venv/bin/python bench/sliding_window.py [--side=1024] [--window=128]
        [--window_batch=8] [--repeats=3] [--memory_side=4096]
    .venv/bin/python bench/sliding_window.py --side=256 --repeats=1 --memory_side=0  # smoke
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from absl import app, flags

from focal_dist.models import sliding_window as sw
from focal_dist.models import unet

FLAGS = flags.FLAGS
flags.DEFINE_integer("side", 1024, "Side of the square image timed.")
flags.DEFINE_integer("window", 128, "Window side (the U-Net's input).")
flags.DEFINE_integer("window_batch", 8, "Windows per model call, on every side.")
flags.DEFINE_integer("repeats", 3, "Turns per side; the best is kept.")
flags.DEFINE_integer("memory_side", 4096, "Side of the image whose peak memory is measured.")
flags.DEFINE_float("memory_overlap", 0.5, "Overlap of the memory run.")
flags.DEFINE_bool("memory_child", False, "Internal: run the memory measurement here.")

NUM_CLASSES, WIDTHS = 2, (16, 32, 64)


def _model():
    window = FLAGS.window
    return unet.build(
        num_outputs=NUM_CLASSES, input_shape=(window, window, 1), widths=WIDTHS, seed=0
    )


def _ours(model, overlap):
    return tf.function(
        lambda image: sw.sliding_window_logits(
            lambda x: model(x, training=False),
            image,
            window=FLAGS.window,
            overlap=overlap,
            window_batch=FLAGS.window_batch,
            num_classes=NUM_CLASSES,
        ),
        input_signature=[tf.TensorSpec([None, None, 1])],
    )


def _windows(image, overlap):
    stride, _ = sw.window_stride(FLAGS.window, overlap)
    starts = sw.window_starts(image.shape[0], FLAGS.window, stride).numpy()
    w = FLAGS.window
    return np.stack([image[y : y + w, x : x + w] for y in starts for x in starts])


def _seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _throughput():
    model = _model()
    image = np.random.default_rng(0).uniform(size=(FLAGS.side, FLAGS.side, 1)).astype("float32")
    step = tf.function(lambda x: model(x, training=False))
    batch = FLAGS.window_batch
    ours_seconds = {}
    print(f"{FLAGS.side}x{FLAGS.side} image, U-Net {WIDTHS} on {FLAGS.window}^2 windows, "
          f"window batch {batch}, best of {FLAGS.repeats}")  # fmt: skip
    print("| overlap | windows | ours (s) | model.predict (s) | tf.function loop (s) "
          "| ours / predict | ours / loop |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for overlap in (0.0, 0.5):
        windows = _windows(image, overlap)
        infer = _ours(model, overlap)
        sides = {
            "ours": lambda infer=infer: infer(image).numpy(),
            "predict": lambda w=windows: model.predict(w, batch_size=batch, verbose=0),
            "loop": lambda w=windows: [
                step(w[i : i + batch]).numpy() for i in range(0, len(w), batch)
            ],
        }
        for function in sides.values():
            function()  # traced and warmed
        best = {name: float("inf") for name in sides}
        for _ in range(FLAGS.repeats):  # in turns, so load drifts hit every side alike
            for name, function in sides.items():
                best[name] = min(best[name], _seconds(function))
        ours_seconds[overlap] = best["ours"]
        print(f"| {overlap} | {len(windows)} | {best['ours']:.2f} | {best['predict']:.2f} | "
              f"{best['loop']:.2f} | {best['predict'] / best['ours']:.2f}x | "
              f"{best['loop'] / best['ours']:.2f}x |")  # fmt: skip
    print(f"overlap 0.5 / overlap 0: {ours_seconds[0.5] / ours_seconds[0.0]:.2f}x the time")


def _memory_child():
    model = _model()
    infer = _ours(model, FLAGS.memory_overlap)
    infer(tf.zeros([FLAGS.window + 1, FLAGS.window + 1, 1]))
    side = FLAGS.memory_side
    image = np.random.default_rng(0).uniform(size=(side, side, 1)).astype("float32")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    logits = infer(image).numpy()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before": before, "after": after, "seconds": seconds,
                      "shape": list(logits.shape)}))  # fmt: skip


def _memory():
    side = FLAGS.memory_side
    command = [sys.executable, __file__, "--memory_child", f"--memory_side={side}",
               f"--memory_overlap={FLAGS.memory_overlap}", f"--window={FLAGS.window}",
               f"--window_batch={FLAGS.window_batch}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    first_level = side * side * WIDTHS[0] * 4 / 2**20
    print(f"{side}x{side} image, overlap {FLAGS.memory_overlap}, window {FLAGS.window}, "
          f"window batch {FLAGS.window_batch}: peak RSS {report['before']:.0f} -> "
          f"{report['after']:.0f} MiB (+{report['after'] - report['before']:.0f} MiB) in "
          f"{report['seconds']:.0f} s; one whole-image activation of the first level: "
          f"{first_level:.0f} MiB (the forward pass holds several)")  # fmt: skip


def main(argv):
    del argv
    if FLAGS.memory_child:
        _memory_child()
        return
    _throughput()
    if FLAGS.memory_side:
        _memory()


if __name__ == "__main__":
    app.run(main)
