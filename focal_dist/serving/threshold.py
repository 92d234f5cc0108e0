"""The operating threshold per output, chosen exactly over every worker's shard.

Decision rule: positive iff probability >= threshold. With s_1 > ... > s_m the
distinct scores of an output on the calibration split, candidate j (0..m) flags the
scores s_1..s_j; its threshold lies midway between the last flagged score and the next
one, with 1 and 0 as the outer neighbours:

    T_j = (s_j + s_{j+1}) / 2,   s_0 = 1, s_{m+1} = 0

(T_0, flagging nothing, exists only if s_1 < 1; a midpoint that rounds onto s_{j+1}
becomes s_j). A midpoint keeps every calibration example on the side it was counted
on when the served graph recomputes its probability in float32, unless two scores
are closer than float32's rounding. `targets.parse_target` says how j is chosen;
ties in F1 or cost go to the higher threshold (fewer alarms); "at least R" allows a
relative 1e-12 so that 90 of 100 reach 0.9. With `confidence` (decision.confidence),
"recall:R" takes the highest threshold whose Clopper-Pearson lower bound of recall
reaches R (serving/recall_bound.py), and the Decision records the bound.

Exactness over workers: F1 and cost need the whole ordering of scores, so every
worker places its scores and labels at its offset in a zero array [2, N, C] and one
SUM over workers gives every worker the whole split, bit for bit (x + 0 = x); the
choice is then one process's. It costs 16 bytes per example and output on each
worker: 16 MB for a split of 10^6 examples (subsample a larger one).

`prevalence_weights` [2, C] (negative, positive), e.g. `Calibration.prevalence_weights()`,
weighs the counts to a deployment prevalence: precision, F1 and cost are then estimates
there; recall and the counts reported are the split's own.
"""

from __future__ import annotations

import numpy as np

from focal_dist.distribute.resolve import resolve_backend
from focal_dist.serving import _shards
from focal_dist.serving.evaluation import evaluate_thresholds
from focal_dist.serving.operating_point import Decision, OperatingPoint, binary_split, rates
from focal_dist.serving.recall_bound import (
    RecallBound,
    TooFewPositives,
    detections_needed,
    recall_lower_bound,
)
from focal_dist.serving.targets import Target, parse_target

_REACH = 1 - 1e-12


class ThresholdError(ValueError):
    """No threshold reaches the target; `best` is the best value achievable."""

    def __init__(self, message: str, *, output: int, best: float | None = None):
        super().__init__(message)
        self.output, self.best = output, best


def _needed(positives: float, target: Target, confidence, output: int) -> float:
    """The true positives "recall:R" needs: R n, or k* with decision.confidence."""
    if confidence is None:
        return target.value * positives * _REACH
    try:
        return detections_needed(round(positives), target.value, confidence=confidence)
    except TooFewPositives as error:
        raise ThresholdError(f"output {output}: {error}", output=output) from error


def _select(scores, labels, target: Target, weights, output: int, confidence=None):
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    ends = np.append(np.flatnonzero(np.diff(scores) != 0), len(scores) - 1)
    distinct = scores[ends]
    tp = np.concatenate([[0.0], np.cumsum(labels)[ends]])
    fp = np.concatenate([[0.0], ends + 1.0]) - tp
    positives = float(labels.sum())
    above, below = np.append(1.0, distinct), np.append(distinct, 0.0)
    thresholds = (above + below) / 2
    thresholds[:-1] = np.where(thresholds[:-1] <= below[:-1], above[:-1], thresholds[:-1])
    precision, recall, f1 = rates(tp, fp, positives, weights)
    kind, value = target.kind, target.value
    if positives == 0 and kind != "cost":
        raise ThresholdError(
            f"output {output} has no positive example in the calibration split: "
            f"decision.target {target} is undefined there",
            output=output,
        )
    if kind == "f1":
        j = 1 + int(np.argmax(f1[1:]))
    elif kind == "recall":
        j = int(np.flatnonzero(tp >= _needed(positives, target, confidence, output))[0])
    elif kind == "precision":
        reach = np.flatnonzero(precision[1:] >= value * _REACH)
        if not len(reach):
            best = 1 + int(np.argmax(precision[1:]))
            raise ThresholdError(
                f"output {output}: no threshold reaches precision {value!r} on the "
                f"calibration split; the best is {precision[best]:.6g} (threshold "
                f"{thresholds[best]:.6g}, recall {recall[best]:.6g})",
                output=output,
                best=float(precision[best]),
            )
        j = 1 + int(reach[-1])
    else:  # cost
        cost = value * weights[1] * (positives - tp) + weights[0] * fp
        if distinct[0] >= 1.0:  # no threshold in [0, 1] flags nothing
            cost[0] = np.inf
        j = int(np.argmin(cost))
    return OperatingPoint(
        threshold=float(thresholds[j]),
        precision=float(precision[j]),
        recall=float(recall[j]),
        f1=float(f1[j]),
        true_positives=int(tp[j]),
        false_positives=int(fp[j]),
        false_negatives=int(positives - tp[j]),
        num_examples=len(scores),
    )


def choose_threshold(
    probabilities, labels, *, target, backend, prevalence_weights=None, confidence=None
) -> Decision:
    """The threshold per output for `target` on every worker's shard of the split.

    Args:
      probabilities: this worker's calibrated [n_local, C] probabilities (C = 1 binary).
      labels: 0/1 [n_local, C].
      target: a `decision.target` string or `Target`.
      backend: a `focal_dist.distribute.Backend`; each example on exactly one worker.
      prevalence_weights: None or [2, C] (negative, positive) weights of the counts.
      confidence: `decision.confidence` for "recall:R": the highest threshold whose
        Clopper-Pearson lower bound of recall reaches R (serving/recall_bound.py).

    Returns:
      The same Decision on every worker (two sums over workers; one for threshold:T).

    Raises:
      ThresholdError: an output cannot reach the target (with the best value).
    """
    target = parse_target(target)
    if confidence is not None and target.kind != "recall":
        raise ValueError(
            f"decision.confidence bounds a recall:R target; got {confidence!r} with "
            f"decision.target {target}"
        )
    backend = resolve_backend(backend)
    if target.kind == "threshold":
        width = 1 if np.ndim(probabilities) == 1 else np.shape(probabilities)[1]

        return evaluate_thresholds(
            probabilities,
            labels,
            thresholds=[target.value] * width,
            backend=backend,
            target=str(target),
        )
    split = binary_split(probabilities, labels, backend)
    n, num_outputs = split.num_examples, split.num_outputs
    weights = np.ones((2, num_outputs))
    if prevalence_weights is not None:
        weights = np.asarray(prevalence_weights, np.float64)
        if weights.shape != (2, num_outputs) or not np.all(np.isfinite(weights) & (weights > 0)):
            raise ValueError(
                f"prevalence_weights must be > 0 with shape (2, {num_outputs}); got {weights}"
            )
    whole = np.zeros((2, n, num_outputs))
    rows = slice(split.offset, split.offset + len(split.values))
    whole[0, rows], whole[1, rows] = split.values, split.labels
    whole = _shards.sum_over_workers(backend, whole)
    points = tuple(
        _select(whole[0, :, c], whole[1, :, c], target, weights[:, c], c, confidence)
        for c in range(num_outputs)
    )
    if confidence is None:
        return Decision(str(target), points)
    return Decision(str(target), points, tuple(_bound(p, target, confidence) for p in points))


def _bound(point: OperatingPoint, target: Target, confidence: float) -> RecallBound:
    positives = point.true_positives + point.false_negatives
    return RecallBound(
        target=target.value,
        confidence=float(confidence),
        positives=positives,
        detections_needed=detections_needed(positives, target.value, confidence=confidence),
        detected=point.true_positives,
        lower_bound=recall_lower_bound(point.true_positives, positives, confidence=confidence),
    )
