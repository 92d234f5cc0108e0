"""Class weights and the focal alpha from a label histogram, on the host.

The histogram (`counting.label_histogram`) counts each example once over all workers, so
the weights are the same on every worker and equal to one process's.
"""

from __future__ import annotations

import numbers

import numpy as np

from focal_dist.class_weights.counting import LabelHistogram

SCHEMES = ("balanced", "inverse", "inverse_sqrt", "effective_number")


def _group_counts(histogram: LabelHistogram) -> np.ndarray:
    """[K, G] counts: binary/multi-label K=2 (negatives, positives) x G outputs; else
    K=C classes x G=1."""
    if histogram.label_mode in ("binary", "multi_label"):
        return np.stack([histogram.negatives, histogram.positives]).astype(np.float64)
    return histogram.counts.astype(np.float64)[:, None]


def class_weights(
    histogram: LabelHistogram,
    scheme: str = "balanced",
    beta: float = 0.999,
    normalize: bool = True,
    min_count: int | None = None,
) -> np.ndarray:
    r"""Per-class weights from a histogram, in the form the losses' `class_weight` takes.

    Over the K classes of each output (K = 2, negative and positive, for binary and
    multi-label; K = C otherwise), with n_k examples of class k and N = sum_k n_k:

        balanced          w_k = N / (K n_k)                 (scikit-learn's "balanced")
        inverse           w_k = 1 / n_k
        inverse_sqrt      w_k = 1 / sqrt(n_k)
        effective_number  w_k = (1 - beta) / (1 - beta^n_k) (Cui et al., CVPR 2019)

    With `normalize`, weights are scaled so that their example-weighted mean is 1,
    sum_k n_k w_k = N, which keeps the loss on the training distribution at the scale of
    the unweighted loss ("balanced" already has this property).

    A class with no examples raises ValueError, unless `min_count` is given: then every
    n_k is taken as max(n_k, min_count), a finite rule.

    Returns:
      binary and multi_label: float64 array [2, C] (row 0 negative, row 1 positive
      weights); sparse and categorical: float64 array [C].
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}")
    if scheme == "effective_number" and not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1) for effective_number, got {beta!r}")
    if min_count is not None and (not isinstance(min_count, numbers.Real) or min_count <= 0):
        raise ValueError(f"min_count must be a positive number or None, got {min_count!r}")
    counts = _group_counts(histogram)
    empty = np.argwhere(counts == 0)
    if len(empty) and min_count is None:
        where = ", ".join(_describe_group(histogram, k, g) for k, g in empty)
        raise ValueError(
            f"no examples of {where}: its weight would be infinite; pass min_count= to "
            "use max(count, min_count) instead"
        )
    if min_count is not None:
        counts = np.maximum(counts, float(min_count))
    num_groups = counts.shape[0]
    if scheme == "balanced":
        weights = counts.sum(axis=0, keepdims=True) / (num_groups * counts)
    elif scheme == "inverse":
        weights = 1.0 / counts
    elif scheme == "inverse_sqrt":
        weights = 1.0 / np.sqrt(counts)
    else:
        weights = (
            (1.0 - beta) / (-np.expm1(counts * np.log(beta)))
            if beta > 0
            else (np.ones_like(counts))
        )
    if normalize:
        weights = (
            weights
            * counts.sum(axis=0, keepdims=True)
            / (counts * weights).sum(axis=0, keepdims=True)
        )
    if histogram.label_mode in ("binary", "multi_label"):
        return weights
    return weights[:, 0]


def _describe_group(histogram: LabelHistogram, k: int, g: int) -> str:
    if histogram.label_mode == "binary":
        return "negatives" if k == 0 else "positives"
    if histogram.label_mode == "multi_label":
        return f"{'negatives' if k == 0 else 'positives'} of output {g}"
    return f"class {k}"


def focal_alpha(histogram: LabelHistogram, *, per_output: bool = False, min_count=None):
    r"""The positive-class `alpha` of the binary focal loss from label frequencies.

        alpha = n_neg / (n_neg + n_pos)

    so the rare positives get the larger weight (alpha) and the frequent negatives
    1 - alpha; with 1% positives, alpha = 0.99. For multi_label the counts are pooled
    over outputs, or given per output ([C]) with `per_output=True`. A histogram without
    positives or without negatives raises ValueError unless `min_count` is given (counts
    are then taken as max(n, min_count)).
    """
    if histogram.label_mode not in ("binary", "multi_label"):
        raise ValueError(
            f"focal_alpha is for binary and multi_label histograms, got {histogram.label_mode}"
        )
    positives = histogram.positives.astype(np.float64)
    negatives = histogram.negatives.astype(np.float64)
    if not per_output:
        positives, negatives = positives.sum(keepdims=True), negatives.sum(keepdims=True)
    if min_count is not None:
        positives, negatives = np.maximum(positives, min_count), np.maximum(negatives, min_count)
    elif np.any(positives == 0) or np.any(negatives == 0):
        raise ValueError(
            f"focal_alpha needs positives and negatives; got positives {positives.tolist()} "
            f"and negatives {negatives.tolist()} (pass min_count= for a finite rule)"
        )
    alpha = negatives / (negatives + positives)
    return alpha if per_output else float(alpha[0])
