"""Categorical focal cross-entropy (Keras 3 semantics), one value per example.

The softmax focal loss is computed from the logits without forming 1 - p_c by
subtraction (see `_categorical_focal_from_logits`), so loss and gradient are finite for
every finite logit and every gamma >= 0. `sparse_categorical.py` shares this core.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from focal_dist.losses import _class_weight, _numerics, _validation


def _categorical_focal_from_logits(
    weighted_labels, logits, *, gamma, gamma_schedule, poly_epsilon, axis
):
    r"""sum_c g_c (1 - p_c)^gamma_c (-log p_c + epsilon (1 - p_c)) from logits.

    g = labels * alpha * class_weight. With z = x - max(x), S = sum exp(z) and
    S_{-c} = S - exp(z_c), the mass of the other classes: p_c = exp(z_c) / S,
    1 - p_c = S_{-c} / S, -log p_c = log S - z_c. For the top class S - exp(0) would
    cancel, so S_{-c} and S - 1 are summed from the other classes directly, and
    log S = log1p(S - 1) keeps -log p_c exact as p_c -> 1. Where every other class
    underflows, 1 - p_c = 0 and the term is 0, as it is to float precision.

    The gradient is written out (tf.custom_gradient). With A_c = (1 - p_c)^gamma_c,
    B_c = -log p_c and
        h_c = g_c A_c (gamma_c p_c B_c / (1 - p_c) + 1 + epsilon (gamma_c + 1) p_c):
        d loss / d x_j = p_j sum_c h_c - h_j,
    where B_c / (1 - p_c) -> 1 as p_c -> 1, so no 0 * inf appears for any gamma >= 0. It
    needs one exp per element (no log for integer gamma), against exp and log plus their
    autodiff in Keras. No gradient flows to the labels, nor to gamma_c.
    """
    plain = gamma == 0 and gamma_schedule is None
    tiny = np.finfo(logits.dtype.as_numpy_dtype).tiny

    @tf.custom_gradient
    def focal_cross_entropy(x):
        z = x - tf.reduce_max(x, axis=axis, keepdims=True)
        exp_z = tf.exp(z)
        is_top = z >= 0
        others_of_top = tf.reduce_sum(tf.where(is_top, 0.0, exp_z), axis=axis, keepdims=True)
        top_count = tf.reduce_sum(tf.cast(is_top, x.dtype), axis=axis, keepdims=True)
        total_minus_one = others_of_top + (top_count - 1.0)  # S - 1, without cancellation
        inv_total = 1.0 / (1.0 + total_minus_one)
        log_total = tf.math.log1p(total_minus_one)
        total_without_class = tf.where(is_top, total_minus_one, (1.0 + total_minus_one) - exp_z)
        one_minus_p = total_without_class * inv_total
        neg_log_p = log_total - z
        modulating, gamma_c = _numerics.focal_factor(
            one_minus_p,
            lambda: tf.math.log(tf.maximum(total_without_class, tiny)) - log_total,
            gamma=gamma,
            gamma_schedule=gamma_schedule,
        )
        body = neg_log_p + poly_epsilon * one_minus_p if poly_epsilon else neg_log_p
        loss = tf.reduce_sum(weighted_labels * modulating * body, axis=axis)

        def grad(upstream):
            p = exp_z * inv_total
            slope = 1.0 + poly_epsilon * (gamma_c + 1.0) * p if poly_epsilon else 1.0
            if not plain:
                has_others = total_without_class > 0
                ratio = tf.where(
                    has_others, neg_log_p / tf.where(has_others, one_minus_p, 1.0), 1.0
                )
                slope = slope + gamma_c * p * ratio
            h = weighted_labels * modulating * slope
            h_total = tf.reduce_sum(h, axis=axis, keepdims=True)
            return tf.expand_dims(upstream, axis) * (p * h_total - h)

        return loss, grad

    return focal_cross_entropy(logits)


def _categorical_focal_from_probabilities(
    weighted_labels, probabilities, *, gamma, gamma_schedule, poly_epsilon, axis
):
    # Keras renormalises so that the classes sum to 1, then clips.
    p = probabilities / tf.reduce_sum(probabilities, axis=axis, keepdims=True)
    p = tf.clip_by_value(p, _numerics.EPSILON, 1.0 - _numerics.EPSILON)
    one_minus_p = 1.0 - p
    modulating, _ = _numerics.focal_factor(
        one_minus_p, lambda: tf.math.log(one_minus_p), gamma=gamma, gamma_schedule=gamma_schedule
    )
    # multiply_no_nan: a label of 0 times log p = -inf stays 0, as in the formula.
    terms = -tf.math.multiply_no_nan(tf.math.log(p), weighted_labels)
    if poly_epsilon:
        terms += poly_epsilon * weighted_labels * one_minus_p
    return tf.reduce_sum(modulating * terms, axis=axis)


def categorical_focal(labels, y_pred, *, alpha, class_weight, from_logits, axis, **focusing):
    """sum over `axis` of alpha_c w_c t_c (1 - p_c)^gamma_c (-log p_c + eps (1 - p_c)).

    `alpha` and `class_weight` are checked (a float or per-class arrays); `focusing`
    holds the checked gamma, gamma_schedule and poly_epsilon.
    """
    rank, dtype = y_pred.shape.rank, y_pred.dtype
    weighted_labels = labels
    if isinstance(alpha, np.ndarray) or alpha != 1.0:
        weighted_labels = _numerics.per_class(alpha, rank, axis, dtype) * weighted_labels
    if class_weight is not None:
        weighted_labels = _numerics.along_axis(class_weight, rank, axis, dtype) * weighted_labels
    core = _categorical_focal_from_logits if from_logits else _categorical_focal_from_probabilities
    return core(weighted_labels, y_pred, axis=axis, **focusing)


def check_focusing(gamma, gamma_schedule, poly_epsilon) -> dict:
    return dict(
        gamma=_validation.check_gamma(gamma),
        gamma_schedule=_validation.check_gamma_schedule(gamma_schedule),
        poly_epsilon=_validation.check_poly_epsilon(poly_epsilon),
    )


# Python-only control flow: autograph's source rewrite at every trace is pure cost.
@tf.autograph.experimental.do_not_convert
def categorical_focal_crossentropy(
    y_true,
    y_pred,
    *,
    gamma: float = 2.0,
    alpha=0.25,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    class_weight=None,
    gamma_schedule: str | None = None,
    poly_epsilon: float = 0.0,
) -> tf.Tensor:
    r"""Categorical focal cross-entropy (Keras 3 semantics), one value per example.

    With labels smoothed as t = y (1 - s) + s / C and p = softmax(y_pred) along `axis`
    (or the renormalised, clipped probabilities):

        l = sum_c alpha_c * w_c * t_c * (1 - p_c)^gamma_c * (-log p_c + epsilon (1 - p_c))

    gamma_c = gamma, or the FLSD-53 schedule on p_c; epsilon = `poly_epsilon` (Poly-1:
    for one-hot labels, epsilon (1 - p_t)^(gamma + 1)).

    Args:
      y_true: one-hot (or soft) labels, same shape as y_pred.
      y_pred: logits or probabilities with C classes along `axis`; any float dtype.
      gamma: focusing parameter, >= 0; gamma = 0 gives alpha-scaled cross-entropy.
      alpha: a scalar or a length-C vector, entries in [0, 1].
      from_logits: whether y_pred holds logits.
      label_smoothing: s in [0, 1].
      axis: the class axis: the sum is taken over it and label smoothing spreads s over
        its C entries.
      class_weight: None, {class_id: weight} covering every class, or a length-C sequence.
      gamma_schedule: None (use `gamma`) or "flsd53": gamma_c = 5 where p_c < 0.2, else 3,
        in place of `gamma`, held constant under differentiation.
      poly_epsilon: Poly-1's epsilon, >= -1 (keeps l >= 0); 0 is the focal loss.

    Returns:
      The per-example loss: y_pred's shape without `axis`.

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017;
      Mukhoti et al., "Calibrating Deep Neural Networks using Focal Loss", NeurIPS 2020;
      Leng et al., "PolyLoss", ICLR 2022.
    """
    focusing = check_focusing(gamma, gamma_schedule, poly_epsilon)
    label_smoothing = _validation.check_unit_interval("label_smoothing", label_smoothing)
    y_true, y_pred, _ = _numerics.prepare(y_true, y_pred)
    rank = y_pred.shape.rank
    axis = _validation.check_axis(axis, rank)
    num_classes = y_pred.shape[axis] if rank is not None else None
    alpha = _validation.check_alpha_vector(alpha, num_classes)
    weights = _class_weight.categorical_class_weight(class_weight, num_classes)
    with tf.control_dependencies(_validation.check_same_shape(y_true, y_pred)):
        labels = tf.identity(y_true)
    if label_smoothing:
        # The class axis, not the last one (keras-team/keras#23437 fixed the same).
        num_labels = tf.cast(tf.shape(labels)[axis], labels.dtype)
        labels = labels * (1.0 - label_smoothing) + label_smoothing / num_labels
    return categorical_focal(
        labels,
        y_pred,
        alpha=alpha,
        class_weight=weights,
        from_logits=from_logits,
        axis=axis,
        **focusing,
    )
