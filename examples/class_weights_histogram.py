"""Class weights and focal alpha from the labels of every worker, each counted once."""

import sys

import numpy as np
import tensorflow as tf

from focal_dist import class_weights, distribute


def count(distribution="default"):
    # Any dataset of (features, labels), batched; here 990 negatives and 10 positives.
    labels = (np.arange(1000) % 100 == 0).astype(np.float32)
    features = np.zeros((1000, 4), np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(100)
    # "horovod" under horovodrun, "multiworker" with TF_CONFIG: every worker gets the
    # same dataset, reads its own shard, and the counts are summed over workers.
    backend = distribute.get_backend(distribution)
    histogram = class_weights.label_histogram(
        dataset, num_classes=1, label_mode="binary", backend=backend
    )
    weights = class_weights.class_weights(histogram, "effective_number", beta=0.999)
    alpha = class_weights.focal_alpha(histogram)  # n_neg / N = 0.99
    return histogram, weights, alpha


if __name__ == "__main__":
    histogram, weights, alpha = count(*sys.argv[1:])
    print(f"counts {histogram.counts.tolist()} weights {weights.ravel().tolist()} alpha {alpha}")
