"""Asymmetric loss (ASL) for multi-label classification, one value per example.

Negatives swamp every label in multi-label tagging; ASL focuses them harder than the
positives (gamma_neg > gamma_pos) and shifts their probability down by `clip`, which
discards easy negatives entirely (p <= clip adds nothing) and, the authors argue,
rejects mislabelled negatives (very high p).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from focal_dist.losses import _numerics, _validation


def _exp_power(neg_log_x, exponent: float):
    """x^exponent from -log x: 1.0 for exponent 0, else one exp (no division, no log)."""
    return 1.0 if exponent == 0 else tf.exp(-exponent * neg_log_x)


def _log_q_tiny_clip(softplus_pos, clip: float):
    """log q = logaddexp(log(1 - p), log clip), for a clip below sqrt(float tiny).

    There the sum (1 - p) + clip would underflow where both terms do (x > 87 in
    float32), so it is taken in log space; log(clip) is Python's, finite for every clip.
    """
    log_clip = math.log(clip)
    log_one_minus_p = -softplus_pos
    high = tf.maximum(log_one_minus_p, log_clip)
    return high + tf.math.log1p(tf.exp(-tf.abs(log_one_minus_p - log_clip)))


def _asymmetric_slope(labels, x, e, *, gamma_pos, gamma_neg, clip, tiny_clip, detach_focusing):
    """d l / d x from x and e = exp(-|x|) alone, in forms of its own (see the caller)."""
    one_plus_e = 1.0 + e
    s = 1.0 / one_plus_e
    es = e * s
    nonneg = x >= 0
    p = tf.where(nonneg, s, es)
    one_minus_p = tf.where(nonneg, es, s)
    focus_pos = gamma_pos != 0 and not detach_focusing
    focus_neg = gamma_neg != 0 and not detach_focusing

    def log1p_e():
        # log(1 + e) corrected by the rounding error of 1 + e (exact, e <= 1): log1p's
        # digits from a log, and a form the forward's log1p is not merged with.
        return tf.math.log(one_plus_e) + (e - (one_plus_e - 1.0))

    def softplus_neg():  # -log p
        return tf.nn.relu(-x) + log1p_e()

    def softplus_pos():  # -log(1 - p)
        return tf.nn.relu(x) + log1p_e()

    weight_pos = _numerics.power(one_minus_p, gamma_pos, lambda: -softplus_pos())
    d_pos = one_minus_p + gamma_pos * p * softplus_neg() if focus_pos else one_minus_p
    d_pos = -weight_pos * d_pos
    if clip == 0:
        weight_neg = _numerics.power(p, gamma_neg, lambda: -softplus_neg())
        d_neg = p + gamma_neg * one_minus_p * softplus_pos() if focus_neg else p
        return labels * d_pos + (1.0 - labels) * weight_neg * d_neg

    shifted = tf.nn.relu(p - clip)
    active = shifted > 0
    if tiny_clip:
        log_one_minus_p = -softplus_pos()
        neg_log_q = -_log_q_tiny_clip(-log_one_minus_p, clip)
        share = tf.exp(log_one_minus_p + neg_log_q)  # (1 - p) / q, in (0, 1]
    else:
        # q = 1 - p_m as q_hi + q_lo: below p_m = 1/2 the rounding error of 1 - p_m
        # (exact, Fast2Sum) keeps log q's digits where q -> 1; above it q = (1 - p) + clip
        # keeps them where 1 - p -> 0. log(q_hi + q_lo) = log q_hi + q_lo to eps / 2.
        small = shifted <= 0.5
        q_hi = tf.where(small, 1.0 - shifted, one_minus_p + clip)
        q_lo = tf.where(small, (1.0 - q_hi) - shifted, 0.0)
        neg_log_q = -(tf.math.log(q_hi) + q_lo) if focus_neg else None
        share = one_minus_p / q_hi
    n = _numerics.small_integer(gamma_neg)
    if gamma_neg == 0:
        slope = share
    elif n is not None:
        # p_m^(g - 1) by multiplies: finite at p_m = 0 for every integer g >= 1.
        below = _numerics.integer_power(shifted, n - 1) if n > 1 else 1.0
        slope = below * shifted * share
        if focus_neg:
            slope += gamma_neg * one_minus_p * below * neg_log_q
    else:
        safe = tf.where(active, shifted, 1.0)
        weight_neg = tf.exp(gamma_neg * tf.math.log(safe))
        slope = weight_neg * share
        if focus_neg:
            # p_m^(g - 1) (-log q) as p_m^g (-log q / p_m): the ratio -> 1 where p_m -> 0.
            slope += gamma_neg * one_minus_p * weight_neg * neg_log_q / safe
    d_neg = tf.where(active, p * slope, 0.0)
    return labels * d_pos + (1.0 - labels) * d_neg


def _asymmetric_from_logits(labels, logits, *, gamma_pos, gamma_neg, clip, detach_focusing):
    r"""t L+ + (1 - t) L- from logits x, with its gradient written out.

    With p = sigmoid(x), softplus(-x) = -log p and softplus(x) = -log(1 - p) (each
    relu(+-x) + log1p(e), e = exp(-|x|)):
        L+ = (1 - p)^g+ softplus(-x),
        dL+/dx = -(1 - p)^g+ [(1 - p) + g+ p softplus(-x)].
    For clip c = 0:
        L- = p^g- softplus(x),
        dL-/dx = p^g- [p + g- (1 - p) softplus(x)].
    For c > 0, p_m = max(p - c, 0) and q = 1 - p_m = min((1 - p) + c, 1):
        L- = p_m^g- (-log q),
        dL-/dx = p (1 - p) [p_m^g- / q + g- p_m^(g- - 1) (-log q)] where p > c, else 0.
    With (a, b) = (1, e) where x >= 0, else (e, 1), so that p = a / (1 + e):
        p_m = max(a - c (1 + e), 0) / (1 + e),
        log q = min(log(b + c (1 + e)) - log1p(e), 0):
    q (1 + e) is a sum of non-negative terms (finite down to q = c, never 1 minus a
    rounded p), and p_m cancels only where p - c does. The last term of dL-/dx is finite
    for every g- >= 0, as -log q / p_m -> 1 where p_m -> 0. With `detach_focusing` the
    focusing weights are constants of the gradient (the g+ and g- terms drop). No
    gradient flows to the labels.
    """
    # A clip below sqrt(tiny) would round (1 - p) + c to 0 where 1 - p underflows; above
    # it the underflowed 1 - p is below c * sqrt(tiny), far below the rounding of q.
    tiny_clip = 0 < clip < math.sqrt(np.finfo(logits.dtype.as_numpy_dtype).tiny)
    focusing = dict(gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip)

    @tf.custom_gradient
    def asymmetric(x):
        e = tf.exp(-tf.abs(x))
        log1p_e = tf.math.log1p(e)
        softplus_neg = tf.nn.relu(-x) + log1p_e  # -log p
        softplus_pos = tf.nn.relu(x) + log1p_e  # -log(1 - p)
        loss_pos = _exp_power(softplus_pos, gamma_pos) * softplus_neg
        if clip == 0:
            loss_neg = _exp_power(softplus_neg, gamma_neg) * softplus_pos
        else:
            one_plus_e = 1.0 + e
            nonneg = x >= 0
            shifted = tf.nn.relu(tf.where(nonneg, 1.0, e) - clip * one_plus_e) / one_plus_e
            if tiny_clip:
                log_q = _log_q_tiny_clip(softplus_pos, clip)
            else:
                log_q = tf.math.log(tf.where(nonneg, e, 1.0) + clip * one_plus_e) - log1p_e
            neg_log_q = tf.nn.relu(-log_q)  # 0 where p <= c: q = min(1 - p + c, 1)
            # log(1) where p_m = 0: a gamma_neg that rounds to 0 in float32 times log(0)
            # would be NaN (the weight multiplies -log q = 0 there).
            safe = tf.where(shifted > 0, shifted, 1.0)
            weight_neg = _numerics.power(shifted, gamma_neg, lambda: tf.math.log(safe))
            loss_neg = weight_neg * neg_log_q

        def grad(upstream):
            # The gradient reads only e from the forward and recomputes the rest in forms of
            # its own: XLA's CPU backend runs the loss's reduction and the gradient as two
            # loops and writes out in full every exp, log or division both read (16 MB at
            # 2^22 elements); a second log costs less than that round trip, and distinct
            # forms keep XLA's common-subexpression pass from merging them back into one.
            slope = _asymmetric_slope(
                labels, x, e, tiny_clip=tiny_clip, detach_focusing=detach_focusing, **focusing
            )
            return upstream * slope

        return labels * loss_pos + (1.0 - labels) * loss_neg, grad

    return asymmetric(logits)


def _asymmetric_from_probabilities(labels, probabilities, *, gamma_pos, gamma_neg, clip, detach):
    p = tf.clip_by_value(probabilities, _numerics.EPSILON, 1.0 - _numerics.EPSILON)

    def hold(weight):  # a weight of exponent 0 is the Python float 1.0
        return tf.stop_gradient(weight) if detach and isinstance(weight, tf.Tensor) else weight

    weight_pos = hold(_numerics.power(1.0 - p, gamma_pos, lambda: tf.math.log(1.0 - p)))
    loss_pos = -weight_pos * tf.math.log(p)
    shifted = p - clip
    active = shifted > 0
    safe = tf.where(active, shifted, 0.5)  # no pow(0, g < 1) or log(0) in the gradient
    weight_neg = hold(_numerics.power(safe, gamma_neg, lambda: tf.math.log(safe)))
    loss_neg = tf.where(active, -weight_neg * tf.math.log1p(-safe), 0.0)
    return labels * loss_pos + (1.0 - labels) * loss_neg


# Python-only control flow: autograph's source rewrite at every trace is pure cost.
@tf.autograph.experimental.do_not_convert
def asymmetric_loss(
    y_true,
    y_pred,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    from_logits: bool = False,
    axis: int = -1,
    detach_focusing: bool = False,
) -> tf.Tensor:
    r"""Asymmetric loss (Ridnik et al.), mean over `axis`, one value per example.

    With p = sigmoid(y_pred) (or the clipped probability) and p_m = max(p - clip, 0),
    element-wise

        l = -[y (1 - p)^gamma_pos log p + (1 - y) p_m^gamma_neg log(1 - p_m)]

    and the result is the mean of l over `axis`, as Keras's binary losses are. The
    authors sum over labels and batch; the mean differs by the constant C (one learning
    rate scale) and lets compute_global_loss give the global mean over examples.
    gamma_pos = gamma_neg = clip = 0 is binary cross-entropy.

    Args:
      y_true: labels in [0, 1] (soft labels enter linearly), shape of y_pred.
      y_pred: logits or probabilities, shape [B, ..., C]; any float dtype.
      gamma_pos: focusing of the positives, >= 0.
      gamma_neg: focusing of the negatives, >= 0.
      clip: the probability margin of the negatives, in [0, 1]; 0 turns it off.
      from_logits: whether y_pred holds logits.
      axis: the axis of the labels, averaged over.
      detach_focusing: hold (1 - p)^gamma_pos and p_m^gamma_neg constant under
        differentiation, as the authors' training script does
        (`disable_torch_grad_focal_loss=True`); False differentiates the loss as written.

    Returns:
      The per-example loss: y_pred's shape without `axis`.

    References:
      Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021.
    """
    gamma_pos = _validation.check_nonnegative("gamma_pos", gamma_pos)
    gamma_neg = _validation.check_nonnegative("gamma_neg", gamma_neg)
    clip = _validation.check_unit_interval("clip", clip)
    detach_focusing = _validation.check_bool("detach_focusing", detach_focusing)
    y_true, y_pred, _ = _numerics.prepare(y_true, y_pred)
    y_true = _numerics.match_rank(y_true, y_pred)
    axis = _validation.check_axis(axis, y_pred.shape.rank)
    with tf.control_dependencies(_validation.check_same_shape(y_true, y_pred)):
        labels = tf.identity(y_true)
    kwargs = dict(gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip)
    if from_logits:
        loss = _asymmetric_from_logits(labels, y_pred, detach_focusing=detach_focusing, **kwargs)
    else:
        loss = _asymmetric_from_probabilities(labels, y_pred, detach=detach_focusing, **kwargs)
    return tf.reduce_mean(loss, axis=axis)
