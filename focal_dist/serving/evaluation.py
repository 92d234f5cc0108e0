"""Eval-split metrics of the deployed decision rule, exact over workers.

binary and multi_label: precision, recall and F1 of `probability >= threshold` per
output; sparse: accuracy and per-class precision, recall and F1 of the argmax, with
their macro means. Each is one handshake and one SUM of counts over workers.
"""

from __future__ import annotations

import numpy as np

from focal_dist.distribute.resolve import resolve_backend
from focal_dist.serving import _shards
from focal_dist.serving.operating_point import Decision, OperatingPoint, binary_split, rates


def evaluate_thresholds(probabilities, labels, *, thresholds, backend, target=None) -> Decision:
    """Precision, recall and F1 at given thresholds per output (e.g. on the eval split),
    from counts summed over workers (two sums)."""
    backend = resolve_backend(backend)
    split = binary_split(probabilities, labels, backend)
    thresholds = np.asarray(thresholds, np.float64).ravel()
    if thresholds.shape != (split.num_outputs,):
        raise ValueError(f"thresholds must hold {split.num_outputs} value(s); got {thresholds}")
    flagged = split.values >= thresholds
    y = split.labels
    local = np.stack([(flagged * y).sum(0), (flagged * (1 - y)).sum(0), y.sum(0)])
    tp, fp, positives = _shards.sum_over_workers(backend, local)
    points = []
    for c, threshold in enumerate(thresholds):
        precision, recall, f1 = rates(tp[c : c + 1], fp[c : c + 1], positives[c], np.ones(2))
        points.append(
            OperatingPoint(
                float(threshold),
                float(precision[0]),
                float(recall[0]),
                float(f1[0]),
                int(tp[c]),
                int(fp[c]),
                int(positives[c] - tp[c]),
                split.num_examples,
            )
        )
    return Decision(target or "fixed", tuple(points))


def evaluate_argmax(probabilities, labels, *, backend) -> dict:
    """Multi-class decisions (argmax of the probabilities): accuracy, per-class
    precision, recall and F1 and their macro means, exact over workers."""
    backend = resolve_backend(backend)
    split = _shards.agree(
        probabilities,
        labels,
        label_mode="sparse",
        backend=backend,
        what="probabilities",
        probabilities=True,
    )
    num_classes = split.num_outputs
    predicted = _shards.one_hot(np.argmax(split.values, axis=1), num_classes)
    actual = _shards.one_hot(split.labels, num_classes)
    local = np.stack([(predicted * actual).sum(0), predicted.sum(0), actual.sum(0)])
    tp, flagged, positives = _shards.sum_over_workers(backend, local)
    precision = np.divide(tp, flagged, out=np.zeros(num_classes), where=flagged > 0)
    recall = np.divide(tp, positives, out=np.zeros(num_classes), where=positives > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(num_classes), where=total > 0)
    return {
        "rule": "argmax",
        "accuracy": float(tp.sum() / split.num_examples),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "num_examples": split.num_examples,
    }
