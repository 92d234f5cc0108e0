"""Class weights from a counted histogram, as every task sets them (`loss.class_weights`).

Classification counts examples per class, segmentation valid pixels per class; both
hand the all-reduced `LabelHistogram` here, so the schemes (focal_dist/class_weights/)
and the TensorBoard table are the same for both.
"""

from __future__ import annotations

import numpy as np
from absl import logging

from focal_dist import class_weights as class_weights_lib
from focal_dist.class_weights import LabelHistogram
from focal_dist.tasks.base import TaskReport


def scheme(loss) -> str:
    """`loss.class_weights` resolved ("auto" is "balanced"); ValueError if unknown."""
    name = "balanced" if loss.class_weights == "auto" else loss.class_weights
    if name != "none" and name not in class_weights_lib.SCHEMES:
        raise ValueError(
            f"loss.class_weights must be none, auto or one of "
            f"{', '.join(class_weights_lib.SCHEMES)}; got {loss.class_weights!r}"
        )
    return name


def fit(histogram: LabelHistogram, loss, *, what: str = "label") -> np.ndarray | None:
    """The weights of `loss.class_weights` from `histogram` (None for "none"), logged.

    A class with no count gets min_count = 1 (a finite rule, never inf)."""
    name = scheme(loss)
    if name == "none":
        logging.info("%s histogram %s (no class weights)", what, histogram.counts.tolist())
        return None
    weights = class_weights_lib.class_weights(histogram, name, beta=loss.beta, min_count=1)
    logging.info(
        "%s histogram %s -> %s weights %s",
        what,
        histogram.counts.tolist(),
        name,
        np.round(weights, 4).tolist(),
    )
    return weights


def report(histogram: LabelHistogram | None, weights, *, name: str) -> TaskReport | None:
    """The histogram and its weights as a TensorBoard table (weight 1 where none)."""
    if histogram is None:
        return None
    sparse = histogram.label_mode not in ("binary", "multi_label")
    if weights is None:
        weights = np.ones((histogram.num_classes,) if sparse else (2, histogram.num_classes))
    weights = np.asarray(weights)
    if sparse:
        rows = [[c, int(n), f"{weights[c]:.4f}"] for c, n in enumerate(histogram.counts)]
        return TaskReport(name, ["class", "count", "weight"], rows)
    rows = [
        [c, int(p), int(histogram.num_examples - p), f"{weights[0, c]:.4f}", f"{weights[1, c]:.4f}"]
        for c, p in enumerate(histogram.positives)
    ]
    return TaskReport(name, ["output", "positives", "negatives", "w_neg", "w_pos"], rows)
