"""Numerics shared by every loss: compute dtype, class-axis shapes, the focal factor.

The losses compute in log space from logits so that loss and gradient are finite for
every finite logit; the pieces they share live here, once:

* float16 and bfloat16 inputs are computed in float32 (float64 stays float64);
* a per-class (or per-output) vector is reshaped to broadcast along the class axis;
* the focal factor (1 - p_t)^gamma_i, with gamma_i a constant or the FLSD-53 schedule,
  is a few multiplies for small integer exponents and exp(gamma log(1 - p_t)) otherwise.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

EPSILON = 1e-7  # Keras's backend.epsilon(): the probability clip, kept for parity.
FLSD53 = "flsd53"
GAMMA_SCHEDULES = (FLSD53,)


def compute_dtype(dtype: tf.DType) -> tf.DType:
    """float32 for half-precision and non-float inputs, else the dtype itself."""
    if dtype in (tf.float16, tf.bfloat16) or not dtype.is_floating:
        return tf.float32
    return dtype


def prepare(y_true, y_pred):
    """(y_true, y_pred, dtype): both as tensors of the compute dtype of y_pred."""
    y_pred = tf.convert_to_tensor(y_pred)
    dtype = compute_dtype(y_pred.dtype)
    y_pred = tf.cast(y_pred, dtype)
    y_true = tf.cast(tf.convert_to_tensor(y_true), dtype)
    return y_true, y_pred, dtype


def match_rank(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Adds a trailing unit axis to labels of shape [B] given predictions [B, 1]."""
    if (
        y_true.shape.rank is not None
        and y_pred.shape.rank is not None
        and y_true.shape.rank == y_pred.shape.rank - 1
        and y_pred.shape[-1] == 1
    ):
        return tf.expand_dims(y_true, -1)
    return y_true


def along_axis(vector: np.ndarray, rank: int, axis: int, dtype) -> tf.Tensor:
    """Reshapes a per-class vector so that it broadcasts along `axis` of a rank-`rank` tensor."""
    axis = axis % rank
    shape = [1] * rank
    shape[axis] = -1
    return tf.reshape(tf.constant(vector, dtype=dtype), shape)


def per_class(value, rank: int, axis: int, dtype):
    """A checked scalar stays a Python float; a checked vector broadcasts along `axis`."""
    if isinstance(value, np.ndarray):
        return along_axis(value, rank, axis, dtype)
    return value


def small_integer(gamma: float) -> int | None:
    """gamma as an int when it is one of 1..8: then (1 - p_t)^gamma is a few multiplies."""
    return int(gamma) if float(gamma).is_integer() and 1 <= gamma <= 8 else None


def integer_power(x: tf.Tensor, n: int) -> tf.Tensor:
    result, base = None, x
    while n:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if n:
            base = base * base
    return result


def power(x: tf.Tensor, exponent: float, log_x) -> tf.Tensor | float:
    """x^exponent for x in [0, 1]: 1.0 for exponent 0, multiplies for 1..8, else exp-log.

    `log_x` is a callable returning log(x) (finite, from the logits where possible), so
    that the log is only taken when it is needed.
    """
    if exponent == 0:
        return 1.0
    n = small_integer(exponent)
    if n is not None:
        return integer_power(x, n)
    return tf.exp(exponent * log_x())


def focal_factor(one_minus_pt: tf.Tensor, log_one_minus_pt, *, gamma: float, gamma_schedule):
    r"""((1 - p_t)^gamma_i, gamma_i), element-wise.

    gamma_i = gamma, or with gamma_schedule="flsd53" (Mukhoti et al. 2020):

        gamma_i = 5 where p_t < 0.2, else 3

    held constant under differentiation (stop_gradient), as the authors' code does (it
    picks each example's gamma with `.item()`). Both exponents are integers, so the
    factor is multiplies only. gamma_i is a Python float without a schedule.
    """
    if gamma_schedule == FLSD53:
        below = one_minus_pt > 0.8  # p_t < 0.2
        cube = integer_power(one_minus_pt, 3)
        factor = tf.where(below, cube * one_minus_pt * one_minus_pt, cube)
        gamma_i = tf.stop_gradient(3.0 + 2.0 * tf.cast(below, one_minus_pt.dtype))
        return factor, gamma_i
    return power(one_minus_pt, gamma, log_one_minus_pt), gamma


def is_plain(gamma: float, gamma_schedule, poly_epsilon: float) -> bool:
    """True when the focal loss is plain cross-entropy: no factor, no Poly-1 term."""
    return gamma == 0 and gamma_schedule is None and poly_epsilon == 0
