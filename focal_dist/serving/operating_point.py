"""An operating point and what it gives: counts, precision, recall, F1 per output."""

from __future__ import annotations

import dataclasses

import numpy as np

from focal_dist.serving import _shards
from focal_dist.serving.recall_bound import RecallBound


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
    """One output's threshold and what it gives on the split it was measured on."""

    threshold: float
    precision: float  # 0 when nothing is flagged
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    false_negatives: int
    num_examples: int


@dataclasses.dataclass(frozen=True)
class Decision:
    """The target and one operating point per output; with `decision.confidence`, the
    recall bound each point rests on."""

    target: str
    points: tuple[OperatingPoint, ...]
    recall_bounds: tuple[RecallBound, ...] | None = None

    @property
    def thresholds(self) -> tuple[float, ...]:
        return tuple(p.threshold for p in self.points)

    def to_dict(self) -> dict:
        document = {
            "target": self.target,
            "rule": "probability >= threshold",
            "thresholds": list(self.thresholds),
            "points": [dataclasses.asdict(p) for p in self.points],
        }
        if self.recall_bounds is not None:
            document["recall_bounds"] = [dataclasses.asdict(b) for b in self.recall_bounds]
        return document


def rates(tp, fp, positives, weights):
    """(precision, recall, f1) arrays from counts, with (negative, positive) weights."""
    tp_w, fp_w = weights[1] * tp, weights[0] * fp
    fn_w = weights[1] * (positives - tp)
    flagged = tp_w + fp_w
    precision = np.divide(tp_w, flagged, out=np.zeros_like(tp_w), where=flagged > 0)
    recall = tp / positives if positives else np.zeros_like(tp_w)
    denominator = 2 * tp_w + fp_w + fn_w
    f1 = np.divide(2 * tp_w, denominator, out=np.zeros_like(tp_w), where=denominator > 0)
    return precision, recall, f1


def binary_split(probabilities, labels, backend):
    probabilities = np.asarray(probabilities)
    label_mode = (
        "binary" if probabilities.ndim == 1 or probabilities.shape[-1] == 1 else "multi_label"
    )
    return _shards.agree(
        probabilities,
        labels,
        label_mode=label_mode,
        backend=backend,
        what="probabilities",
        probabilities=True,
    )
