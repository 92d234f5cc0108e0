"""Logit adjustment (Menon et al.): the class prior in the loss, or taken out at prediction.

Training with cross-entropy on long-tailed data learns logits that carry the training
prior log pi_y; the balanced error wants them without it. Either train on
`logits + tau log pi` (the loss form: the model's own logits come out prior-free) or
train plainly and predict with `logits - tau log pi` (the post-hoc form). For sigmoid
outputs the prior of output k is its log-odds log(pi_k / (1 - pi_k)).

`log_prior` and `positive_rate` come from the label histogram of the whole training
set (in the trainer: the all-reduced histogram, so every replica adds the same offset).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from focal_dist.losses import _numerics, _validation
from focal_dist.losses.binary import binary_focal_crossentropy
from focal_dist.losses.sparse_categorical import (
    sparse_categorical_focal_crossentropy,
    static_classes,
)


def log_prior_from_counts(counts) -> np.ndarray:
    """log pi_c = log(n_c / sum n) from per-class counts; a class with no examples is refused."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or np.any(~np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError(f"counts must be a 1-D sequence of counts >= 0, got {counts.tolist()}")
    empty = np.flatnonzero(counts == 0).tolist()
    if empty:
        raise ValueError(
            f"classes {empty} have no examples, so their log prior is -inf; expected a count "
            f"> 0 for every class (counts {counts.tolist()})"
        )
    return np.log(counts) - np.log(counts.sum())


def _log_odds(positive_rate):
    return np.log(positive_rate) - np.log1p(-np.asarray(positive_rate))


def _offset(values, tau, y_pred, axis):
    """tau * values as a constant broadcasting along `axis` of y_pred (a scalar stays one)."""
    offset = tau * np.asarray(values, np.float64)
    if offset.ndim == 0:
        return tf.constant(offset, y_pred.dtype)
    return _numerics.along_axis(offset, y_pred.shape.rank, axis, y_pred.dtype)


# Python-only control flow: autograph's source rewrite at every trace is pure cost.
@tf.autograph.experimental.do_not_convert
def logit_adjusted_crossentropy(
    y_true,
    logits,
    *,
    log_prior,
    tau: float = 1.0,
    axis: int = -1,
    ignore_class: int | None = None,
) -> tf.Tensor:
    r"""Logit-adjusted softmax cross-entropy for integer labels, one value per example.

        l = -log softmax(x + tau log pi)_y
          = -(x_y + tau log pi_y) + log sum_c exp(x_c + tau log pi_c)

    and l = 0 where y == ignore_class (not counted by the Loss class's reductions).

    Args:
      y_true: integer class ids in [0, C) (or ignore_class), y_pred's shape without `axis`.
      logits: logits with C classes along `axis`; any float dtype.
      log_prior: log pi_c of the training labels, length C, finite (see
        `log_prior_from_counts`); a constant shift changes nothing.
      tau: the adjustment's strength, >= 0; 0 is plain cross-entropy, 1 the paper's.
      axis: the class axis.
      ignore_class: an id whose examples contribute 0.

    Returns:
      The per-example loss, y_true's shape.

    References:
      Menon et al., "Long-tail learning via logit adjustment", ICLR 2021.
    """
    tau = _validation.check_nonnegative("tau", tau)
    logits, axis, num_classes = static_classes(logits, axis)
    log_prior = _validation.check_log_prior(log_prior, num_classes)
    # The softmax is shift-invariant: subtracting the max first keeps the offset's digits
    # where logits are large (1e4 + log pi rounds to 1e-3 in float32; 0 + log pi does not).
    top = tf.stop_gradient(tf.reduce_max(logits, axis=axis, keepdims=True))
    adjusted = (logits - top) + _offset(log_prior, tau, logits, axis)
    return sparse_categorical_focal_crossentropy(
        y_true,
        adjusted,
        gamma=0.0,
        alpha=1.0,
        from_logits=True,
        axis=axis,
        ignore_class=ignore_class,
    )


# Python-only control flow: autograph's source rewrite at every trace is pure cost.
@tf.autograph.experimental.do_not_convert
def logit_adjusted_binary_crossentropy(
    y_true, logits, *, positive_rate, tau: float = 1.0, axis: int = -1
) -> tf.Tensor:
    r"""Logit-adjusted sigmoid cross-entropy (binary, multi-label), mean over `axis`.

    With the positive rate pi_k of output k:

        l_k = bce(y_k, x_k + tau log(pi_k / (1 - pi_k)))

    the binary form of the softmax adjustment (two classes with priors pi and 1 - pi).

    Args:
      y_true: labels in [0, 1], same shape as logits (or [B] with logits [B, 1]).
      logits: logits; any float dtype.
      positive_rate: pi, the training share of positives: a scalar or one per output
        along `axis`, each in (0, 1).
      tau: >= 0; 0 is plain binary cross-entropy.
      axis: the axis the mean is taken over (the outputs).

    Returns:
      The per-example loss: logits' shape without `axis`.

    References:
      Menon et al., "Long-tail learning via logit adjustment", ICLR 2021.
    """
    tau = _validation.check_nonnegative("tau", tau)
    logits = tf.convert_to_tensor(logits)
    logits = tf.cast(logits, _numerics.compute_dtype(logits.dtype))
    axis = _validation.check_axis(axis, logits.shape.rank)
    num_outputs = logits.shape[axis] if logits.shape.rank is not None else None
    positive_rate = _validation.check_positive_rate(positive_rate, num_outputs)
    adjusted = logits + _offset(_log_odds(positive_rate), tau, logits, axis)
    return binary_focal_crossentropy(y_true, adjusted, gamma=0.0, from_logits=True, axis=axis)


# Python-only control flow: autograph's source rewrite at every trace is pure cost.
@tf.autograph.experimental.do_not_convert
def adjust_logits(logits, *, log_prior, tau: float = 1.0, axis: int = -1) -> tf.Tensor:
    r"""Post-hoc adjustment for prediction: `logits - tau * log_prior` along `axis`.

    The argmax of the result is the balanced-error decision of a model trained with
    plain cross-entropy on labels of prior pi (Menon et al. 2021, the post-hoc form).
    Not for a model trained with `logit_adjusted_crossentropy`: its logits are already
    prior-free.
    """
    tau = _validation.check_nonnegative("tau", tau)
    logits, axis, num_classes = static_classes(logits, axis)
    log_prior = _validation.check_log_prior(log_prior, num_classes)
    return logits - _offset(log_prior, tau, logits, axis)


# Python-only control flow: autograph's source rewrite at every trace is pure cost.
@tf.autograph.experimental.do_not_convert
def adjust_binary_logits(logits, *, positive_rate, tau: float = 1.0, axis: int = -1) -> tf.Tensor:
    r"""Post-hoc adjustment of sigmoid outputs: `logits - tau * log(pi / (1 - pi))`."""
    tau = _validation.check_nonnegative("tau", tau)
    logits = tf.convert_to_tensor(logits)
    logits = tf.cast(logits, _numerics.compute_dtype(logits.dtype))
    axis = _validation.check_axis(axis, logits.shape.rank)
    num_outputs = logits.shape[axis] if logits.shape.rank is not None else None
    positive_rate = _validation.check_positive_rate(positive_rate, num_outputs)
    return logits - _offset(_log_odds(positive_rate), tau, logits, axis)
