r"""The embedded default data set: imbalanced, deterministic, generated inside tf.data.

Example i is a pure function of (seed, i) (stateless random ops), so every worker can
generate exactly the examples it needs and every distribution sees the same data:

    x_i ~ N(0, I_F)                                   (F = num_features)
    s_i = x_i . w + interaction * x_i0 x_i1            (w ~ N(0, I) / sqrt(F), from seed)
    binary:      y = s_i > t,  t chosen so that P(y = 1) = positive_rate
    multi_label: C scores with their own w_c; output c has rate positive_rate * 2^c
                 (capped at 0.5)
    sparse:      y = argmax_c (x_i . W_c + log prior_c + Gumbel noise), prior_c ∝ 2^-c
                 (the multiclass task's class ids)

Hard examples: a share `hard_fraction` of negatives is moved to just below the
threshold, where a classifier trained with plain cross-entropy is least sure. Label
noise: each binary label is flipped with probability `label_noise`.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from focal_dist.data.label_modes import LABEL_MODES


def _normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's rational approximation, |err|<1e-8)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


class SyntheticData:
    """Generator of the synthetic data set; `examples(indices)` is deterministic in
    (seed, i). `label_mode` is the layout of its labels (data/label_modes.py)."""

    def __init__(
        self,
        *,
        label_mode: str = "binary",
        num_features: int = 32,
        num_classes: int = 1,
        positive_rate: float = 0.01,
        label_noise: float = 0.0,
        hard_fraction: float = 0.02,
        interaction: float = 0.5,
        seed: int = 0,
    ):
        if label_mode not in LABEL_MODES:
            raise ValueError(
                f"synthetic label_mode must be one of {', '.join(LABEL_MODES)}; got {label_mode!r}"
            )
        if not 0.0 < positive_rate < 1.0:
            raise ValueError(f"positive_rate must be in (0, 1), got {positive_rate!r}")
        if not 0.0 <= label_noise < 0.5:
            raise ValueError(f"label_noise must be in [0, 0.5), got {label_noise!r}")
        if num_features < 2:
            raise ValueError(f"num_features must be >= 2, got {num_features}")
        if label_mode == "binary" and num_classes != 1:
            raise ValueError(f"num_classes must be 1 for binary labels, got {num_classes}")
        if label_mode != "binary" and num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 for {label_mode} labels, got {num_classes}")
        self.label_mode = label_mode
        self.num_features = num_features
        self.num_classes = num_classes
        self.positive_rate = positive_rate
        self.label_noise = label_noise
        self.hard_fraction = hard_fraction
        self.interaction = interaction
        self.seed = seed
        self._traced = None
        rng = np.random.default_rng(seed)
        outputs = 1 if label_mode == "binary" else num_classes
        self.weights = (rng.normal(size=(num_features, outputs)) / math.sqrt(num_features)).astype(
            np.float32
        )
        # Var(s) = |w|^2 + interaction^2 (x0 x1 has unit variance).
        scale = np.sqrt((self.weights**2).sum(axis=0) + interaction**2)
        if label_mode == "binary":
            rates = np.array([positive_rate])
        elif label_mode == "multi_label":
            rates = np.minimum(positive_rate * 2.0 ** np.arange(num_classes), 0.5)
        else:
            rates = 2.0 ** -np.arange(num_classes)
            rates = rates / rates.sum()
        self.rates = rates
        self.thresholds = (
            np.array(
                [scale[c] * _normal_quantile(1 - rates[c]) for c in range(len(rates))], np.float32
            )
            if label_mode != "sparse"
            else np.zeros(outputs, np.float32)
        )
        self.log_prior = np.log(rates).astype(np.float32)
        self.scale = scale.astype(np.float32)

    def examples(self, indices: tf.Tensor):
        """(features [B, F] float32, labels) for int64 example ids [B].

        Labels: binary float32 [B, 1]; multi_label float32 [B, C]; sparse int64 [B].
        """
        indices = tf.cast(indices, tf.int64)
        if tf.executing_eagerly():
            # Op by op, as tf.data runs a function (no graph rewrite that fuses ops and
            # changes the last bit of a value): the same values as inside a pipeline.
            return self._examples(indices)
        if self._traced is None:
            # Traced once per generator: every split's pipeline and the label count share
            # it (each of their own traces cost ~0.15 s of a run's start). Python-only
            # control flow: no autograph rewrite.
            self._traced = tf.function(
                self._examples,
                input_signature=[tf.TensorSpec([None], tf.int64)],
                autograph=False,
            )
        return self._traced(indices)

    def _examples(self, indices):
        seeds = tf.stack([tf.fill(tf.shape(indices), tf.constant(self.seed, tf.int64)), indices], 1)

        def draw(seed_pair):
            seed = tf.cast(seed_pair, tf.int64)
            x = tf.random.stateless_normal([self.num_features], seed=seed)
            u = tf.random.stateless_uniform(
                [self.num_classes + 2], seed=seed + tf.constant([0, 1 << 40], tf.int64)
            )
            return x, u

        x, u = tf.map_fn(
            draw, seeds, fn_output_signature=(tf.float32, tf.float32), parallel_iterations=64
        )
        score = tf.matmul(x, self.weights) + self.interaction * (x[:, :1] * x[:, 1:2])
        if self.label_mode == "sparse":
            gumbel = -tf.math.log(
                -tf.math.log(tf.clip_by_value(u[:, : self.num_classes], 1e-7, 1 - 1e-7))
            )
            labels = tf.argmax(score / self.scale + self.log_prior + gumbel, axis=1)
            return x, labels
        positive = score > self.thresholds
        if self.hard_fraction > 0:
            # Pull some negatives to just below the threshold along w (hard negatives).
            hard = tf.logical_and(tf.logical_not(positive[:, :1]), u[:, -1:] < self.hard_fraction)
            direction = self.weights[:, 0] / np.linalg.norm(self.weights[:, 0])
            shift = (self.thresholds[0] - 0.05 * self.scale[0] - score[:, :1]) / np.linalg.norm(
                self.weights[:, 0]
            )
            x = x + tf.where(hard, shift, 0.0) * direction
        labels = tf.cast(positive, tf.float32)
        if self.label_noise > 0:
            flip = u[:, : labels.shape[1]] < self.label_noise
            labels = tf.where(flip, 1.0 - labels, labels)
        return x, labels


# The generator's name before it took a label mode; tests and users import it.
SyntheticTask = SyntheticData


def synthetic_dataset(
    generator: SyntheticData,
    num_examples: int,
    *,
    offset: int = 0,
) -> tf.data.Dataset:
    """Examples offset .. offset + num_examples - 1, unbatched, in order."""
    return (
        tf.data.Dataset.range(offset, offset + num_examples)
        .batch(1024)
        .map(generator.examples, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .unbatch()
    )
