"""Calibration fitted on a held-out split, exactly over every worker's shard.

With z the model's logits, the calibrated probability is

    binary, multi_label (Platt, per output c):  p_c = sigmoid(a_c z_c + b_c + s_c)
    sparse (temperature and bias, per class k): p_k = softmax_k(z_k / T + bias_k + s_k)

`s` is the prior shift for a deployment prevalence that differs from the calibration
split's (Saerens et al. 2002): s_c = logit(π'_c) - logit(π_c) per output, or
s_k = log π'_k - log π_k per class, where π is the split's positive rate (class
frequencies) and π' the deployment's; s = 0 without one. One arithmetic,
`scale * z + offset + shift` then sigmoid or softmax, serves NumPy and the graph.

The parameters maximise the likelihood of Platt's smoothed targets: an example of a
class with N_k examples (binary: the positives or the negatives) has target
(N_k + 1) / (N_k + C) on its class and 1 / (N_k + C) on each other class (C = 2 for an
output: Platt 1999's t+ = (N+ + 1)/(N+ + 2), t- = 1/(N- + 2), as scikit-learn's
`_sigmoid_calibration`). Why smoothed rather than 0/1 targets: a split the model
separates (an easy split, or a few positives) has no finite maximum-likelihood fit
(a -> inf, T -> 0), while with targets inside (0, 1) the objective is strictly convex
with a finite minimum on every split; and the numbers compare like for like with
scikit-learn's Platt scaling. The price: the calibrated mean probability on the split
equals the mean target, within 1/N of the positive rate.

References: Platt 1999; Guo et al. 2017 (temperature scaling); Saerens et al. 2002.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from focal_dist.distribute.resolve import resolve_backend
from focal_dist.serving import _likelihood, _newton, _shards

METHODS = ("auto", "platt", "temperature", "none")


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Fitted calibration: calibrated logit = scale * z + offset + shift (per output).

    Attributes:
      label_mode: "binary", "multi_label" (sigmoid per output) or "sparse" (softmax).
      method: "platt", "temperature" or "none" (scale 1, offset 0: the identity).
      scale: a_c per output, or 1/T repeated for every class.
      offset: b_c per output, or bias_k per class (centred: softmax ignores a constant).
      shift: prior shift per output or class; zeros without a deployment prevalence.
      calibration_prior: the split's positive rate per output, or class frequencies.
      deploy_prior: the deployment prevalence (per output) or class prior, or None.
      num_examples: N, the size of the calibration split.
    """

    label_mode: str
    method: str
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    shift: tuple[float, ...]
    calibration_prior: tuple[float, ...] | None = None
    deploy_prior: tuple[float, ...] | None = None
    num_examples: int = 0

    @classmethod
    def identity(cls, *, label_mode: str, num_outputs: int) -> Calibration:
        """method "none": the model's own sigmoid or softmax."""
        _shards.check_label_mode(label_mode)
        ones, zeros = (1.0,) * num_outputs, (0.0,) * num_outputs
        return cls(label_mode, "none", ones, zeros, zeros)

    @property
    def num_outputs(self) -> int:
        return len(self.scale)

    @property
    def temperature(self) -> float | None:
        """T of temperature scaling (sparse), else None."""
        return 1.0 / self.scale[0] if self.label_mode == "sparse" else None

    @property
    def formula(self) -> str:
        link = "softmax" if self.label_mode == "sparse" else "sigmoid"
        return f"probabilities = {link}(scale * logits + offset + shift)"

    def logits_numpy(self, logits) -> np.ndarray:
        """Calibrated logits, float64 [n, C]."""
        z = np.asarray(logits, np.float64).reshape(-1, self.num_outputs)
        return z * np.asarray(self.scale) + (np.asarray(self.offset) + np.asarray(self.shift))

    def apply_numpy(self, logits) -> np.ndarray:
        """Calibrated probabilities, float64 [n, C]."""
        calibrated = self.logits_numpy(logits)
        if self.label_mode == "sparse":
            calibrated = calibrated - calibrated.max(axis=1, keepdims=True)
            e = np.exp(calibrated)
            return e / e.sum(axis=1, keepdims=True)
        e = np.exp(-np.abs(calibrated))
        return np.where(calibrated >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def apply_tf(self, logits: tf.Tensor) -> tf.Tensor:
        """Calibrated probabilities, float32 [n, C]: `apply_numpy`'s arithmetic in a graph."""
        scale = tf.constant(self.scale, tf.float32)
        bias = tf.constant(np.asarray(self.offset) + np.asarray(self.shift), tf.float32)
        calibrated = tf.cast(logits, tf.float32) * scale + bias
        return tf.nn.softmax(calibrated) if self.label_mode == "sparse" else tf.sigmoid(calibrated)

    def prevalence_weights(self) -> np.ndarray:
        """[2, C] (negative, positive) weights that turn the split's counts into counts
        at the deployment prevalence: π'/π for positives, (1-π')/(1-π) for negatives;
        ones without one. For `threshold.choose_threshold` (binary, multi_label)."""
        if self.deploy_prior is None or self.label_mode == "sparse":
            return np.ones((2, self.num_outputs))
        deploy, prior = np.asarray(self.deploy_prior), np.asarray(self.calibration_prior)
        return np.stack([(1 - deploy) / (1 - prior), deploy / prior])

    def to_dict(self) -> dict:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - fields
        if unknown:
            raise ValueError(
                f"calibration has no field(s) {sorted(unknown)}; it has {sorted(fields)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _resolve_method(method: str, label_mode: str) -> str:
    fitted = "temperature" if label_mode == "sparse" else "platt"
    if method == "auto":
        return fitted
    if method not in METHODS:
        raise ValueError(f"calibration.method must be one of {', '.join(METHODS)}; got {method!r}")
    if method not in (fitted, "none"):
        raise ValueError(
            f"calibration.method {method!r} does not apply to {label_mode} labels; "
            f"use auto, {fitted} or none"
        )
    return method


def _prior_shift(deploy, prior: np.ndarray, label_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(deployment prior, shift) for `deploy_positive_rate`; errors name what is wrong."""
    what = "calibration.deploy_positive_rate"
    values = np.asarray(deploy, np.float64).ravel()
    if values.size == 1:
        values = np.full(len(prior), values[0]) if label_mode != "sparse" else values
    if values.size != len(prior) or not np.all(np.isfinite(values)):
        raise ValueError(
            f"{what} needs {len(prior)} finite value(s) (one per output); got {deploy!r}"
        )
    if label_mode == "sparse":
        if np.any(values <= 0) or abs(values.sum() - 1) > 1e-6:
            raise ValueError(f"{what} for classes must be > 0 and sum to 1; got {deploy!r}")
        if np.any(prior == 0):
            raise ValueError(
                f"{what}: class {int(np.argmin(prior))} has no example in the calibration "
                "split, so its prior cannot be shifted"
            )
        values = values / values.sum()
        shift = np.log(values) - np.log(prior)
        return values, shift - shift.mean()
    if np.any((values <= 0) | (values >= 1)):
        raise ValueError(f"{what} must lie in (0, 1); got {deploy!r}")
    if np.any((prior == 0) | (prior == 1)):
        c = int(np.flatnonzero((prior == 0) | (prior == 1))[0])
        raise ValueError(
            f"{what}: output {c} has positive rate {prior[c]} on the calibration split; "
            "a prior shift needs both positives and negatives"
        )
    logit = lambda p: np.log(p) - np.log1p(-p)  # noqa: E731
    return values, logit(values) - logit(prior)


def fit_calibration(
    logits, labels, *, label_mode: str, method: str = "auto", backend, deploy_positive_rate=None
) -> Calibration:
    """Fits the calibration of `label_mode` on every worker's shard of a held-out split.

    Args:
      logits: this worker's float [n_local, C] logits (C = 1 for binary); n_local may be 0.
      labels: 0/1 [n_local, C] (binary, multi_label) or class ids [n_local] (sparse).
      label_mode: "binary", "multi_label" or "sparse".
      method: "auto" (platt for binary/multi_label, temperature for sparse), "platt",
        "temperature" or "none" (the identity; no collective).
      backend: a `focal_dist.distribute.Backend` (or what `resolve_backend` takes);
        every example of the split is on exactly one worker.
      deploy_positive_rate: None, a rate in (0, 1) (every output) or one per output;
        for sparse, a class prior vector (summing to 1).

    Returns:
      The same `Calibration` on every worker, equal to one process's fit on the whole
      split (to ~1e-10); 2 + (Newton evaluations, ~10) sums over workers.
    """
    method = _resolve_method(method, _shards.check_label_mode(label_mode))
    backend = resolve_backend(backend)
    if method == "none":
        if deploy_positive_rate is not None:
            raise ValueError(
                "calibration.deploy_positive_rate needs a fitted calibration (method "
                "'none' leaves the probabilities as trained, at no known prevalence)"
            )
        logits = np.asarray(logits)
        width = 1 if logits.ndim == 1 else logits.shape[1]
        return Calibration.identity(label_mode=label_mode, num_outputs=width)
    split = _shards.agree(logits, labels, label_mode=label_mode, backend=backend)
    z, n, num_outputs = split.values, split.num_examples, split.num_outputs
    sparse = label_mode == "sparse"
    y = _shards.one_hot(split.labels, num_outputs) if sparse else split.labels
    counts = _shards.sum_over_workers(backend, y.sum(axis=0))  # positives or class counts
    prior = counts / n
    if sparse:
        targets, theta0 = _likelihood.temperature_start(split.labels, counts, n)
        sums, regularizer = _likelihood.temperature_sums(z, targets), _likelihood.gauge
    else:
        targets, theta0 = _likelihood.platt_start(y, counts, n)
        sums, regularizer = _likelihood.platt_sums(z, targets), None
    theta = _newton.minimize(
        sums,
        theta0,
        backend=backend,
        num_examples=n,
        regularizer=regularizer,
        what=f"{method} calibration of {label_mode} logits",
    )
    if sparse:
        scale, offset = np.full(num_outputs, theta[0, 0]), theta[0, 1:]
    else:
        scale, offset = theta[:, 0], theta[:, 1]
    deploy, shift = None, np.zeros(num_outputs)
    if deploy_positive_rate is not None:
        deploy, shift = _prior_shift(deploy_positive_rate, prior, label_mode)
    as_tuple = lambda v: tuple(float(x) for x in v)  # noqa: E731
    return Calibration(
        label_mode=label_mode,
        method=method,
        scale=as_tuple(scale),
        offset=as_tuple(offset),
        shift=as_tuple(shift),
        calibration_prior=as_tuple(prior),
        deploy_prior=None if deploy is None else as_tuple(deploy),
        num_examples=n,
    )
