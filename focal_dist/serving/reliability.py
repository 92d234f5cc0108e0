"""Calibration metrics of a held-out split, exact over workers: ECE, NLL, Brier.

Probabilities fall in `num_bins` (15) equal-width bins, bin b = [b/B, (b+1)/B) and the
last bin closed at 1. Each worker adds, per bin, the example count n_b, the sum of
probabilities S_b and the sum of positives Y_b; one SUM over workers (with the NLL and
Brier sums) gives the split's totals, so

    ECE = sum_b (n_b / N) |S_b / n_b - Y_b / n_b| = (1 / N) sum_b |S_b - Y_b|

is the one-process value. Per output for binary and multi_label (one-vs-rest 0/1
labels); for sparse, top-label ECE (probability of the argmax, positive when it is
the label) and classwise ECE (the mean over classes of class k's one-vs-rest ECE,
Kull et al. 2019). NLL is the mean -log p(label) from logits (stable where p
rounds to 0 or 1); Brier is the mean (p - y)^2 per output, and for sparse the mean of
sum_k (p_k - y_k)^2 (Brier 1950).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from focal_dist.distribute.resolve import resolve_backend
from focal_dist.serving import _shards
from focal_dist.serving.diagram import reliability_diagram

NUM_BINS = 15


@dataclasses.dataclass(frozen=True)
class Bins:
    """Per-bin sums over the split: counts, probability sums, positive sums [num_bins]."""

    count: np.ndarray
    probability_sum: np.ndarray
    positive_sum: np.ndarray

    @property
    def ece(self) -> float:
        total = self.count.sum()
        return float(np.abs(self.probability_sum - self.positive_sum).sum() / total)


def bin_sums(probabilities: np.ndarray, positives: np.ndarray, num_bins: int) -> np.ndarray:
    """[C, 3, num_bins] local (count, probability sum, positive sum) of [n, C] columns."""
    index = np.minimum((probabilities * num_bins).astype(np.int64), num_bins - 1)
    sums = np.zeros((probabilities.shape[1], 3, num_bins))
    for c in range(probabilities.shape[1]):
        for row, weights in enumerate((None, probabilities[:, c], positives[:, c])):
            sums[c, row] = np.bincount(index[:, c], weights=weights, minlength=num_bins)
    return sums


def _bins(sums: np.ndarray) -> tuple[Bins, ...]:
    return tuple(Bins(*s) for s in sums)


@dataclasses.dataclass(frozen=True)
class CalibrationMetrics:
    """ECE, NLL and Brier of one split.

    binary/multi_label: `ece`, `nll`, `brier` and `bins` per output; sparse: `ece`
    holds the top-label ECE (one value), `classwise_ece` the mean one-vs-rest ECE,
    `nll` and `brier` one value, `bins` the top-label bins.
    """

    label_mode: str
    num_examples: int
    ece: tuple[float, ...]
    nll: tuple[float, ...]
    brier: tuple[float, ...]
    bins: tuple[Bins, ...]
    classwise_ece: float | None = None

    def to_dict(self) -> dict:
        """For summary.json: scalars for binary and sparse, lists and means for multi_label."""
        if self.label_mode == "sparse":
            return {
                "top_label_ece": self.ece[0],
                "classwise_ece": self.classwise_ece,
                "nll": self.nll[0],
                "brier": self.brier[0],
                "num_examples": self.num_examples,
            }
        values = {"ece": self.ece, "nll": self.nll, "brier": self.brier}
        if self.label_mode == "binary":
            return {**{k: v[0] for k, v in values.items()}, "num_examples": self.num_examples}
        means = {f"mean_{k}": float(np.mean(v)) for k, v in values.items()}
        return {
            **{k: list(v) for k, v in values.items()},
            **means,
            "num_examples": self.num_examples,
        }

    def scalars(self) -> dict[str, float]:
        """Flat {name: value} for TensorBoard (per label: "ece/label_<c>")."""
        values = self.to_dict()
        flat = {}
        for name, value in values.items():
            if name == "num_examples":
                continue
            if isinstance(value, list):
                flat.update({f"{name}/label_{c}": v for c, v in enumerate(value)})
            else:
                flat[name] = value
        return flat

    def diagram(self, output: int = 0, *, size: int = 192) -> np.ndarray:
        """uint8 [size, size, 3] reliability diagram of `output` (sparse: top label)."""
        return reliability_diagram(self.bins[output], size=size)


def calibration_metrics(
    logits, labels, *, label_mode: str, backend, num_bins: int = NUM_BINS
) -> CalibrationMetrics:
    """ECE, NLL and Brier of this worker's shard and every other worker's, exactly.

    Args:
      logits: this worker's [n_local, C] logits whose sigmoid (binary, multi_label) or
        softmax (sparse) are the probabilities judged: the model's raw logits, or
        `Calibration.logits_numpy(raw)` for the calibrated ones.
      labels: 0/1 [n_local, C] or class ids [n_local] (sparse).
      backend: a `focal_dist.distribute.Backend`; every example on exactly one worker.

    Returns:
      The same metrics on every worker after two sums over workers.
    """
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1; got {num_bins!r}")
    backend = resolve_backend(backend)
    split = _shards.agree(logits, labels, label_mode=label_mode, backend=backend)
    z, n, num_outputs = split.values, split.num_examples, split.num_outputs
    if label_mode == "sparse":
        top = z.max(axis=1, keepdims=True) if len(z) else np.zeros((0, 1))
        log_p = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
        p = np.exp(log_p)
        y = _shards.one_hot(split.labels, num_outputs)
        confidence = p.max(axis=1, keepdims=True)
        correct = (np.argmax(p, axis=1) == split.labels)[:, None].astype(np.float64)
        local = np.concatenate(
            [
                [-np.sum(log_p * y), np.sum((p - y) ** 2)],
                bin_sums(confidence, correct, num_bins).ravel(),
                bin_sums(p, y, num_bins).ravel(),
            ]
        )
        total = _shards.sum_over_workers(backend, local)
        top_label = total[2 : 2 + 3 * num_bins].reshape(1, 3, num_bins)
        classwise = total[2 + 3 * num_bins :].reshape(num_outputs, 3, num_bins)
        return CalibrationMetrics(
            label_mode,
            n,
            ece=(_bins(top_label)[0].ece,),
            nll=(float(total[0] / n),),
            brier=(float(total[1] / n),),
            bins=_bins(top_label),
            classwise_ece=float(np.mean([b.ece for b in _bins(classwise)])),
        )
    y = split.labels
    e = np.exp(-np.abs(z))
    p = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    # -log p(y) = softplus(z) - y z, finite for every logit.
    nll = np.sum(np.maximum(z, 0) + np.log1p(e) - y * z, axis=0)
    local = np.concatenate([nll, np.sum((p - y) ** 2, axis=0), bin_sums(p, y, num_bins).ravel()])
    total = _shards.sum_over_workers(backend, local)
    bins = _bins(total[2 * num_outputs :].reshape(num_outputs, 3, num_bins))
    as_tuple = lambda v: tuple(float(x) for x in v)  # noqa: E731
    return CalibrationMetrics(
        label_mode,
        n,
        ece=as_tuple(b.ece for b in bins),
        nll=as_tuple(total[:num_outputs] / n),
        brier=as_tuple(total[num_outputs : 2 * num_outputs] / n),
        bins=bins,
    )
