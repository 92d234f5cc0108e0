"""Binary and multi-label focal cross-entropy (Keras 3 semantics), one value per example.

Logits go through log-sigmoid pieces, never probability-then-log, and the focal factor
(1 - p_t)^gamma is built from log(1 - p_t) computed from the logits, so loss and
gradient are finite for every finite logit and every gamma >= 0 (Keras's
`power(1 - p_t, gamma)` has an infinite derivative at p_t = 1 when gamma < 1, which
turns into NaN gradients for saturated logits). Probabilities (`from_logits=False`) are
clipped to [1e-7, 1 - 1e-7] as Keras does.
"""

from __future__ import annotations

import tensorflow as tf

from focal_dist.losses import _class_weight, _numerics, _validation


def _binary_focal_from_logits(labels, logits, *, gamma, gamma_schedule, poly_epsilon):
    r"""Element-wise (1 - p_t)^gamma_i (bce + epsilon (1 - p_t)) from logits x, labels t.

    With e = exp(-|x|):
        bce     = max(x, 0) - t x + log1p(e)
        1 - p_t = t sigmoid(-x) + (1 - t) sigmoid(x) = (q + (1 - q) e) / (1 + e),
    where q = t for x < 0 and q = 1 - t for x >= 0: a sum of non-negative terms, so no
    cancellation, and for q = 0 log(1 - p_t) = -|x| - log1p(e) exactly even where e
    underflows. The gradient is written out (tf.custom_gradient) from the same pieces:
        d bce / dx          = sigmoid(x) - t
        d log(1 - p_t) / dx = (1 - 2t) e / ((1 + e)(q + (1 - q) e))
        d l / dx = (1 - p_t)^g [g bce + epsilon (g + 1)(1 - p_t)] d log(1 - p_t)/dx
                   + (1 - p_t)^g d bce / dx
    which is finite for every finite x and gamma >= 0 and saves XLA most of the work that
    autodiff through exp/log/pow costs. No gradient flows to the labels, nor to gamma_i.
    """
    plain = _numerics.is_plain(gamma, gamma_schedule, poly_epsilon)

    @tf.custom_gradient
    def focal_bce(x):
        abs_x = tf.abs(x)
        e = tf.exp(-abs_x)
        one_plus_e = 1.0 + e
        log1p_e = tf.math.log1p(e)
        bce = tf.nn.relu(x) - labels * x + log1p_e
        if plain:
            return bce, lambda upstream: upstream * (tf.where(x >= 0, 1.0, e) / one_plus_e - labels)
        q = tf.where(x < 0, labels, 1.0 - labels)
        inner = q + (1.0 - q) * e
        positive_q = q > 0
        one_minus_pt = inner / one_plus_e

        def log_one_minus_pt():
            # The inner where keeps the untaken log away from log(0).
            safe = tf.math.log(tf.where(positive_q, inner, 1.0))
            return tf.where(positive_q, safe, -abs_x) - log1p_e

        focal, gamma_i = _numerics.focal_factor(
            one_minus_pt, log_one_minus_pt, gamma=gamma, gamma_schedule=gamma_schedule
        )
        body = bce + poly_epsilon * one_minus_pt if poly_epsilon else bce

        def grad(upstream):
            d_bce = tf.where(x >= 0, 1.0, e) / one_plus_e - labels
            # e / inner -> 1 where q = 0 (inner = e), also where e underflows.
            e_over_inner = tf.where(positive_q, e / tf.where(positive_q, inner, 1.0), 1.0)
            d_log_focal = (1.0 - 2.0 * labels) * e_over_inner / one_plus_e
            slope = gamma_i * bce
            if poly_epsilon:
                slope += poly_epsilon * (gamma_i + 1.0) * one_minus_pt
            return upstream * focal * (slope * d_log_focal + d_bce)

        return focal * body, grad

    return focal_bce(logits)


def _binary_focal_from_probabilities(labels, probabilities, *, gamma, gamma_schedule, epsilon):
    p = tf.clip_by_value(probabilities, _numerics.EPSILON, 1.0 - _numerics.EPSILON)
    bce = -(labels * tf.math.log(p) + (1.0 - labels) * tf.math.log(1.0 - p))
    one_minus_pt = labels * (1.0 - p) + (1.0 - labels) * p  # >= 1e-7 after the clip
    focal, _ = _numerics.focal_factor(
        one_minus_pt,
        lambda: tf.math.log(one_minus_pt),
        gamma=gamma,
        gamma_schedule=gamma_schedule,
    )
    return focal * (bce + epsilon * one_minus_pt if epsilon else bce)


# Python-only control flow: autograph's source rewrite at every trace is pure cost.
@tf.autograph.experimental.do_not_convert
def binary_focal_crossentropy(
    y_true,
    y_pred,
    *,
    gamma: float = 2.0,
    alpha=0.25,
    apply_class_balancing: bool = False,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    class_weight=None,
    gamma_schedule: str | None = None,
    poly_epsilon: float = 0.0,
) -> tf.Tensor:
    r"""Binary (and multi-label) focal cross-entropy, one value per example.

    With labels smoothed as t = y (1 - s) + s / 2 and p = sigmoid(y_pred) (or the clipped
    probability), element-wise

        p_t   = t p + (1 - t)(1 - p)
        bce   = -t log p - (1 - t) log(1 - p)
        l     = a_t * c_y * (1 - p_t)^gamma_i * (bce + epsilon (1 - p_t))

    where a_t = t alpha_k + (1 - t)(1 - alpha_k) for output k when
    `apply_class_balancing` (else 1), c_y the class weight of the element's label y
    (y c_1 + (1 - y) c_0 for soft labels), gamma_i = gamma or the FLSD-53 schedule, and
    epsilon = `poly_epsilon` (Poly-1: epsilon (1 - p_t)^(gamma_i + 1)). The result is the
    mean of l over `axis`, as Keras does.

    Args:
      y_true: labels in [0, 1], shape [B, ..., C] (or [B] with y_pred [B, 1]).
      y_pred: logits or probabilities, same shape as y_true; any float dtype.
      gamma: focusing parameter, >= 0. gamma = 0 gives binary cross-entropy.
      alpha: weight of the positive class in [0, 1], used when apply_class_balancing: a
        scalar, or a length-C vector with one alpha per output along `axis`.
      apply_class_balancing: multiply by a_t.
      from_logits: whether y_pred holds logits.
      label_smoothing: s in [0, 1]; enters bce, the focal factor and p_t, as in Keras.
      axis: the axis the mean is taken over (the outputs).
      class_weight: None, {0: w_neg, 1: w_pos}, a length-2 sequence (w_neg, w_pos) or an
        array of shape [2, C] (row 0 negative, row 1 positive weight of each output along
        `axis`). Entries >= 0.
      gamma_schedule: None (use `gamma`) or "flsd53": gamma_i = 5 where p_t < 0.2, else 3,
        in place of `gamma`, held constant under differentiation.
      poly_epsilon: Poly-1's epsilon, >= -1 (keeps l >= 0); 0 is the focal loss.

    Returns:
      The per-example loss: y_pred's shape without `axis`, float32 for half-precision
      inputs, else y_pred's dtype.

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017;
      Mukhoti et al., "Calibrating Deep Neural Networks using Focal Loss", NeurIPS 2020;
      Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
      Functions", ICLR 2022.
    """
    gamma = _validation.check_gamma(gamma)
    gamma_schedule = _validation.check_gamma_schedule(gamma_schedule)
    poly_epsilon = _validation.check_poly_epsilon(poly_epsilon)
    label_smoothing = _validation.check_unit_interval("label_smoothing", label_smoothing)
    y_true, y_pred, dtype = _numerics.prepare(y_true, y_pred)
    y_true = _numerics.match_rank(y_true, y_pred)
    rank = y_pred.shape.rank
    axis = _validation.check_axis(axis, rank)
    num_outputs = y_pred.shape[axis] if rank is not None else None
    alpha = _validation.check_alpha_vector(alpha, num_outputs, what="output")
    weights = _class_weight.binary_class_weight(class_weight, num_outputs)
    with tf.control_dependencies(_validation.check_same_shape(y_true, y_pred)):
        labels = tf.identity(y_true)
    if label_smoothing:
        labels = labels * (1.0 - label_smoothing) + 0.5 * label_smoothing

    focusing = dict(gamma=gamma, gamma_schedule=gamma_schedule)
    if from_logits:
        loss = _binary_focal_from_logits(labels, y_pred, poly_epsilon=poly_epsilon, **focusing)
    else:
        loss = _binary_focal_from_probabilities(labels, y_pred, epsilon=poly_epsilon, **focusing)

    if apply_class_balancing:
        alpha = _numerics.per_class(alpha, rank, axis, dtype)
        loss = (labels * alpha + (1.0 - labels) * (1.0 - alpha)) * loss
    if weights is not None:
        if weights.ndim == 1:
            negative, positive = (tf.constant(w, dtype) for w in weights)
        else:
            negative = _numerics.along_axis(weights[0], rank, axis, dtype)
            positive = _numerics.along_axis(weights[1], rank, axis, dtype)
        loss = (y_true * positive + (1.0 - y_true) * negative) * loss
    return tf.reduce_mean(loss, axis=axis)
