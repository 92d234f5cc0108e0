"""Infers one synthetic image by sliding windows and reports the peak resident memory.

    python sliding_window_memory_worker.py SIDE WINDOW OVERLAP WINDOW_BATCH

The model is two 1x1 convolutions (64 channels, then 2 logits), so the logits at a
pixel are known without the sliding window: a whole-image pass would hold a
[SIDE, SIDE, 64] float32 activation. Prints one JSON line: the peak resident set size
(ru_maxrss) before and after inference, in MiB, the seconds taken, and the largest
difference from the per-pixel logits at 1000 random pixels.
"""

import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from focal_dist.models.sliding_window import sliding_window_logits


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    side, window, overlap, window_batch = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        float(sys.argv[3]),
        int(sys.argv[4]),
    )
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 1))
    hidden = keras.layers.Conv2D(64, 1, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(hidden))
    infer = tf.function(
        lambda image: sliding_window_logits(
            lambda x: model(x, training=False),
            image,
            window=window,
            overlap=overlap,
            window_batch=window_batch,
            num_classes=2,
        ),
        input_signature=[tf.TensorSpec([None, None, 1])],
    )
    infer(tf.zeros([window + 1, window + 1, 1]))  # traced on a small image
    image = np.random.default_rng(0).uniform(size=(side, side, 1)).astype(np.float32)
    before = peak_mib()
    start = time.perf_counter()
    logits = infer(image).numpy()
    seconds = time.perf_counter() - start
    after = peak_mib()
    rows, cols = np.random.default_rng(1).integers(0, side, (2, 1000))
    pixels = model(image[rows, cols][:, None, None, :], training=False).numpy()[:, 0, 0]
    error = float(np.abs(logits[rows, cols] - pixels).max())
    print(
        json.dumps(
            {
                "before_mib": before,
                "after_mib": after,
                "seconds": seconds,
                "max_error": error,
                "shape": list(logits.shape),
            }
        )
    )


if __name__ == "__main__":
    main()
