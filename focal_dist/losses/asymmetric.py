"""Asymmetric loss (ASL) for multi-label classification, one value per example.

Negatives swamp every label in multi-label tagging; ASL focuses them harder than the
positives (gamma_neg > gamma_pos) and shifts their probability down by `clip`, which
discards easy negatives entirely (p <= clip adds nothing) and, the authors argue,
rejects mislabelled negatives (very high p).
"""

from __future__ import annotations

import math

import tensorflow as tf

from focal_dist.losses import _numerics, _validation


def _log_q(p_m, log_one_minus_p, clip: float):
    """log q, q = 1 - p_m = (1 - p) + clip, without cancellation and never log(0).

    Where p_m < 1/2, log1p(-p_m) is exact to p_m's digits; elsewhere q <= 1/2 and
    log((1 - p) + clip) = logaddexp(log(1 - p), log clip) stays finite where 1 - p
    underflows (or where clip is below 1 - p's resolution and p - clip rounds to 1).
    """
    log_clip = math.log(clip)
    high = tf.maximum(log_one_minus_p, log_clip)
    log_sum = high + tf.math.log1p(tf.exp(-tf.abs(log_one_minus_p - log_clip)))
    small = p_m < 0.5
    return tf.where(small, tf.math.log1p(-tf.where(small, p_m, 0.0)), log_sum)


def _asymmetric_from_logits(labels, logits, *, gamma_pos, gamma_neg, clip, detach_focusing):
    r"""t L+ + (1 - t) L- from logits x, with its gradient written out.

    With p = sigmoid(x) and its pieces from e = exp(-|x|) (no cancellation):
        L+ = (1 - p)^g+ softplus(-x),
        dL+/dx = (1 - p)^g+ [-g+ p softplus(-x) - (1 - p)].
    For clip c = 0: L- = p^g- softplus(x), dL-/dx = p^g- [g- (1 - p) softplus(x) + p],
    both powers in log space (log p = -softplus(-x)), so finite where p underflows.
    For c > 0, p_m = p - c where p > c (else L- = 0 and dL-/dx = 0), q = 1 - p_m
    = (1 - p) + c >= c (`_log_q`):
        L- = -p_m^g- log q,
        dL-/dx = p_m^g- [p (1 - p) / q + g- p (1 - p) r],   r = -log q / p_m -> 1,
    which is finite for every g- >= 0 (the naive g- p_m^(g- - 1) is not at p_m -> 0).
    With `detach_focusing` the focusing weights are constants of the gradient (the
    g+ and g- terms drop). No gradient flows to the labels.
    """

    @tf.custom_gradient
    def asymmetric(x):
        abs_x = tf.abs(x)
        e = tf.exp(-abs_x)
        one_plus_e = 1.0 + e
        log1p_e = tf.math.log1p(e)
        p = tf.where(x >= 0, 1.0, e) / one_plus_e
        one_minus_p = tf.where(x >= 0, e, 1.0) / one_plus_e
        softplus_neg = tf.nn.relu(-x) + log1p_e  # -log p
        softplus_pos = tf.nn.relu(x) + log1p_e  # -log(1 - p)
        weight_pos = _numerics.power(one_minus_p, gamma_pos, lambda: -softplus_pos)
        loss_pos = weight_pos * softplus_neg
        if clip == 0:
            weight_neg = _numerics.power(p, gamma_neg, lambda: -softplus_neg)
            loss_neg = weight_neg * softplus_pos
        else:
            shifted = p - clip
            active = shifted > 0
            safe = tf.where(active, shifted, 0.5)  # keeps the untaken logs finite
            neg_log_q = -_log_q(safe, -softplus_pos, clip)
            weight_neg = _numerics.power(safe, gamma_neg, lambda: tf.math.log(safe))
            loss_neg = tf.where(active, weight_neg * neg_log_q, 0.0)

        def grad(upstream):
            d_pos = -one_minus_p
            if gamma_pos and not detach_focusing:
                d_pos -= gamma_pos * p * softplus_neg
            d_pos *= weight_pos
            if clip == 0:
                d_neg = p
                if gamma_neg and not detach_focusing:
                    d_neg += gamma_neg * one_minus_p * softplus_pos
                d_neg *= weight_neg
            else:
                share = tf.exp(-softplus_pos + neg_log_q)  # (1 - p) / q, in (0, 1]
                slope = p * share
                if gamma_neg and not detach_focusing:
                    slope += gamma_neg * p * one_minus_p * neg_log_q / safe
                d_neg = tf.where(active, weight_neg * slope, 0.0)
            return upstream * (labels * d_pos + (1.0 - labels) * d_neg)

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
