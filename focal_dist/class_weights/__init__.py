"""Exact class weights from a label histogram counted over every worker's shard.

    histogram = class_weights.label_histogram(dataset, num_classes=1, label_mode="binary",
                                              backend=backend)
    weights = class_weights.class_weights(histogram, "effective_number", beta=0.999)
    alpha = class_weights.focal_alpha(histogram)

`counting.py` counts each example once over all workers (int64, summed through the
backend); `dataset_graph.py` reads a dataset's graph to find how it is sharded;
`schemes.py` turns a histogram into weights and the focal alpha on the host.
"""

from focal_dist.class_weights.counting import (
    LABEL_MODES,
    LabelHistogram,
    label_histogram,
    summed_histogram,
)
from focal_dist.class_weights.schemes import SCHEMES, class_weights, focal_alpha

__all__ = [
    "LABEL_MODES",
    "SCHEMES",
    "LabelHistogram",
    "class_weights",
    "focal_alpha",
    "label_histogram",
    "summed_histogram",
]
