"""8-connected components in TF graph ops (focal_dist.tasks.components) on vessel-like
masks, against scipy.ndimage.label on the same masks, and lesion counts of a pair.

Masks: "vessels" are random walks with smoothly turning headings (long, thin, winding,
crossing), "serpentine" one path through every other row (the longest path a mask of
that size can hold: the worst case for propagation), "blobs" 0.45-density noise (near
percolation: large tortuous components). Each is labelled by a tf.function (traced
once), best of `repeats`; SciPy is the C reference (single-threaded, in NumPy).

    .venv/bin/python bench/components.py [--sides=512,2048] [--repeats=3]
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from absl import app, flags
from scipy import ndimage

from focal_dist.tasks import components, lesions

FLAGS = flags.FLAGS
flags.DEFINE_list("sides", ["512", "2048"], "Square mask sides.")
flags.DEFINE_integer("repeats", 3, "Timed calls; the best is kept.")


def vessels(side: int, seed: int = 0) -> np.ndarray:
    """Random walks, 1-2 pixels wide: about 10% of the pixels."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((side, side), bool)
    walks, steps = side // 32, side * 4
    for _ in range(walks):
        y, x = rng.uniform(0, side, 2)
        heading = rng.uniform(0, 2 * np.pi)
        turns = np.cumsum(rng.normal(0, 0.3, steps)) + heading
        ys = (y + np.cumsum(np.sin(turns))).astype(int) % side
        xs = (x + np.cumsum(np.cos(turns))).astype(int) % side
        mask[ys, xs] = True
    return mask


def serpentine(side: int) -> np.ndarray:
    mask = np.zeros((side, side), bool)
    mask[::2] = True
    for i, row in enumerate(range(1, side, 2)):
        mask[row, -1 if i % 2 == 0 else 0] = True
    return mask


def _best(function) -> float:
    function()
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv):
    del argv
    label = tf.function(
        components.label_components,
        input_signature=[tf.TensorSpec([None, None, None], tf.bool)],
    )
    count = tf.function(
        lambda truth, prediction: lesions.lesion_counts(truth, prediction, num_classes=2),
        input_signature=[tf.TensorSpec([None, None], tf.int64)] * 2,
    )
    print("| mask | side | mask pixels | components | iterations | ours (s) | SciPy (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for side in (int(s) for s in FLAGS.sides):
        rng = np.random.default_rng(1)
        for name, mask in (
            ("vessels", vessels(side)),
            ("serpentine", serpentine(side)),
            ("blobs", rng.uniform(size=(side, side)) < 0.45),
        ):
            _, iterations = label(mask[None])
            _, num = ndimage.label(mask, structure=np.ones((3, 3)))
            ours = _best(lambda m=mask: label(m[None])[0].numpy())
            theirs = _best(lambda m=mask: ndimage.label(m, structure=np.ones((3, 3))))
            print(f"| {name} | {side} | {mask.mean():.1%} | {num} | {int(iterations)} | "
                  f"{ours:.3f} | {theirs:.3f} |")  # fmt: skip
        truth = vessels(side, seed=2).astype(np.int64)
        prediction = (vessels(side, seed=2) | vessels(side, seed=3)).astype(np.int64)
        seconds = _best(lambda t=truth, p=prediction: count(t, p).numpy())
        print(f"lesion_counts of a {side}x{side} vessel pair (truth and prediction labelled "
              f"in one loop): {seconds:.3f} s")  # fmt: skip


if __name__ == "__main__":
    app.run(main)
