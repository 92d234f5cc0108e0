"""Focal losses as pure functions returning per-example losses.

Each function keeps Keras 3's meaning of every argument (`keras.losses.*focal*`) and
differs where Keras loses precision:

* Logits go through log-sigmoid / log-softmax, never probability-then-log, and the
  focal factor `(1 - p_t)^gamma` is `exp(gamma * log(1 - p_t))` with `log(1 - p_t)`
  computed from the logits. Loss and gradient are finite for every finite logit and every
  `gamma >= 0` (Keras's `power(1 - p_t, gamma)` has an infinite derivative at
  `p_t = 1` when `gamma < 1`, which turns into NaN gradients for saturated logits).
* Probabilities (`from_logits=False`) are clipped to `[eps, 1 - eps]`, `eps = 1e-7`,
  as Keras does, so that results agree with Keras away from saturation. The focal factor
  uses the clipped value too, which keeps its derivative finite at `p in {0, 1}`.

float16 and bfloat16 inputs are computed in float32 and the loss is returned in float32;
float64 stays float64.

References:
  Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017 (arXiv:1708.02002).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from focal_dist.losses import _validation

EPSILON = 1e-7  # Keras's backend.epsilon(): the probability clip, kept for parity.


def compute_dtype(dtype: tf.DType) -> tf.DType:
    """float32 for half-precision and non-float inputs, else the dtype itself."""
    if dtype in (tf.float16, tf.bfloat16) or not dtype.is_floating:
        return tf.float32
    return dtype


def _prepare(y_true, y_pred):
    y_pred = tf.convert_to_tensor(y_pred)
    dtype = compute_dtype(y_pred.dtype)
    y_pred = tf.cast(y_pred, dtype)
    y_true = tf.cast(tf.convert_to_tensor(y_true), dtype)
    return y_true, y_pred, dtype


def _match_rank(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Adds a trailing unit axis to labels of shape [B] given predictions [B, 1]."""
    if (
        y_true.shape.rank is not None
        and y_pred.shape.rank is not None
        and y_true.shape.rank == y_pred.shape.rank - 1
        and y_pred.shape[-1] == 1
    ):
        return tf.expand_dims(y_true, -1)
    return y_true


def _along_axis(vector: np.ndarray, rank: int, axis: int, dtype) -> tf.Tensor:
    """Reshapes a per-class vector so that it broadcasts along `axis` of a rank-`rank` tensor."""
    axis = axis % rank
    shape = [1] * rank
    shape[axis] = -1
    return tf.reshape(tf.constant(vector, dtype=dtype), shape)


def _check_axis(axis, rank: int | None) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(f"axis must be an int, got {axis!r}")
    if rank is not None and not -rank <= axis < rank:
        raise ValueError(f"axis must be in [{-rank}, {rank}) for y_pred of rank {rank}, got {axis}")
    return axis


# --- binary / multi-label -------------------------------------------------------------


def _small_integer(gamma: float) -> int | None:
    """gamma as an int when it is one of 1..8: then (1 - p_t)^gamma is a few multiplies."""
    return int(gamma) if gamma.is_integer() and 1 <= gamma <= 8 else None


def _integer_power(x: tf.Tensor, n: int) -> tf.Tensor:
    result, base = None, x
    while n:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if n:
            base = base * base
    return result


def _binary_focal_from_logits(labels, logits, gamma: float):
    r"""Element-wise (1 - p_t)^gamma * bce from logits x and (possibly soft) labels t.

    With e = exp(-|x|):
        bce     = max(x, 0) - t x + log1p(e)
        1 - p_t = t sigmoid(-x) + (1 - t) sigmoid(x) = (q + (1 - q) e) / (1 + e),
    where q = t for x < 0 and q = 1 - t for x >= 0: a sum of non-negative terms, so no
    cancellation, and for q = 0 log(1 - p_t) = -|x| - log1p(e) exactly even where e
    underflows. The gradient is written out (tf.custom_gradient) from the same pieces:
        d bce / dx          = sigmoid(x) - t
        d log(1 - p_t) / dx = (1 - 2t) e / ((1 + e)(q + (1 - q) e))
    which is finite for every finite x and gamma >= 0 and saves XLA most of the work that
    autodiff through exp/log/pow costs. No gradient flows to the labels.
    """
    integer_gamma = _small_integer(gamma)

    @tf.custom_gradient
    def focal_bce(x):
        abs_x = tf.abs(x)
        e = tf.exp(-abs_x)
        one_plus_e = 1.0 + e
        log1p_e = tf.math.log1p(e)
        bce = tf.nn.relu(x) - labels * x + log1p_e
        if gamma == 0:
            return bce, lambda upstream: upstream * (tf.where(x >= 0, 1.0, e) / one_plus_e - labels)
        q = tf.where(x < 0, labels, 1.0 - labels)
        inner = q + (1.0 - q) * e
        positive_q = q > 0
        if integer_gamma is not None:
            focal = _integer_power(inner / one_plus_e, integer_gamma)
        else:
            # The inner where keeps the untaken log away from log(0).
            log_inner = tf.where(positive_q, tf.math.log(tf.where(positive_q, inner, 1.0)), -abs_x)
            focal = tf.exp(gamma * (log_inner - log1p_e))

        def grad(upstream):
            d_bce = tf.where(x >= 0, 1.0, e) / one_plus_e - labels
            # e / inner -> 1 where q = 0 (inner = e), also where e underflows.
            e_over_inner = tf.where(positive_q, e / tf.where(positive_q, inner, 1.0), 1.0)
            d_log_focal = (1.0 - 2.0 * labels) * e_over_inner / one_plus_e
            return upstream * focal * (gamma * d_log_focal * bce + d_bce)

        return focal * bce, grad

    return focal_bce(logits)


def _binary_terms_from_probabilities(labels, probabilities):
    p = tf.clip_by_value(probabilities, EPSILON, 1.0 - EPSILON)
    bce = -(labels * tf.math.log(p) + (1.0 - labels) * tf.math.log(1.0 - p))
    one_minus_pt = labels * (1.0 - p) + (1.0 - labels) * p
    return bce, tf.math.log(one_minus_pt)


def binary_focal_crossentropy(
    y_true,
    y_pred,
    *,
    gamma: float = 2.0,
    alpha: float = 0.25,
    apply_class_balancing: bool = False,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    class_weight=None,
) -> tf.Tensor:
    r"""Binary (and multi-label) focal cross-entropy, one value per example.

    With labels smoothed as t = y (1 - s) + s / 2 and p = sigmoid(y_pred) (or the clipped
    probability), element-wise

        p_t   = t p + (1 - t)(1 - p)
        bce   = -t log p - (1 - t) log(1 - p)
        l     = a_t * c_y * (1 - p_t)^gamma * bce

    where a_t = t alpha + (1 - t)(1 - alpha) when `apply_class_balancing` (else 1) and c_y
    is the class weight of the element's label y (interpolated for soft labels: y c_1 +
    (1 - y) c_0). The result is the mean of l over `axis`, as Keras does.

    Args:
      y_true: labels in [0, 1], shape [B, ..., C] (or [B] with y_pred [B, 1]).
      y_pred: logits or probabilities, same shape as y_true; any float dtype.
      gamma: focusing parameter, >= 0. gamma = 0 gives binary cross-entropy.
      alpha: weight of the positive class in [0, 1], used when apply_class_balancing.
      apply_class_balancing: multiply by a_t.
      from_logits: whether y_pred holds logits.
      label_smoothing: s in [0, 1]; enters both bce and the focal factor, as in Keras.
      axis: the axis the mean is taken over.
      class_weight: None, {0: w_neg, 1: w_pos}, a length-2 sequence (w_neg, w_pos) or an
        array of shape [2, C] (row 0 negative, row 1 positive weight of each output along
        `axis`). Entries >= 0.

    Returns:
      The per-example loss: y_pred's shape without `axis`, float32 for half-precision
      inputs, else y_pred's dtype.

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    gamma = _validation.check_gamma(gamma)
    alpha = _validation.check_unit_interval("alpha", alpha)
    label_smoothing = _validation.check_unit_interval("label_smoothing", label_smoothing)
    y_true, y_pred, dtype = _prepare(y_true, y_pred)
    y_true = _match_rank(y_true, y_pred)
    rank = y_pred.shape.rank
    axis = _check_axis(axis, rank)
    num_outputs = y_pred.shape[axis] if rank is not None else None
    weights = _validation.binary_class_weight(class_weight, num_outputs)
    with tf.control_dependencies(_validation.check_same_shape(y_true, y_pred)):
        labels = tf.identity(y_true)
    if label_smoothing:
        labels = labels * (1.0 - label_smoothing) + 0.5 * label_smoothing

    if from_logits:
        loss = _binary_focal_from_logits(labels, y_pred, gamma)
    else:
        bce, log_one_minus_pt = _binary_terms_from_probabilities(labels, y_pred)
        loss = bce if gamma == 0 else tf.exp(gamma * log_one_minus_pt) * bce

    if apply_class_balancing:
        loss = (labels * alpha + (1.0 - labels) * (1.0 - alpha)) * loss
    if weights is not None:
        if weights.ndim == 1:
            negative, positive = (tf.constant(w, dtype) for w in weights)
        else:
            negative = _along_axis(weights[0], rank, axis, dtype)
            positive = _along_axis(weights[1], rank, axis, dtype)
        loss = (y_true * positive + (1.0 - y_true) * negative) * loss
    return tf.reduce_mean(loss, axis=axis)


# --- categorical ----------------------------------------------------------------------


def _categorical_focal_from_logits(weighted_labels, logits, gamma: float, axis: int):
    r"""sum_c g_c (1 - p_c)^gamma (-log p_c) from logits, g = labels * alpha * class_weight.

    With z = x - max(x), S = sum exp(z) and S_{-c} = S - exp(z_c), the mass of the other
    classes: p_c = exp(z_c) / S, 1 - p_c = S_{-c} / S, -log p_c = log S - z_c. For the top
    class S - exp(0) would cancel, so S_{-c} and S - 1 are summed from the other classes
    directly, and log S = log1p(S - 1) keeps -log p_c exact as p_c -> 1. Where every other
    class underflows, 1 - p_c = 0 and the term is 0, as it is to float precision.

    The gradient is written out (tf.custom_gradient). With A_c = (1 - p_c)^gamma,
    B_c = -log p_c and h_c = g_c A_c (gamma p_c B_c / (1 - p_c) + 1):
        d loss / d x_j = p_j sum_c h_c - h_j,
    where B_c / (1 - p_c) -> 1 as p_c -> 1, so no 0 * inf appears for any gamma >= 0. It
    needs one exp per element (no log for integer gamma), against exp and log plus their
    autodiff in Keras. No gradient flows to the labels.
    """
    integer_gamma = _small_integer(gamma)
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
        neg_log_p = log_total - z
        if gamma == 0:
            modulating = 1.0
        elif integer_gamma is not None:
            modulating = _integer_power(total_without_class * inv_total, integer_gamma)
        else:
            log_without = tf.math.log(tf.maximum(total_without_class, tiny))
            modulating = tf.exp(gamma * (log_without - log_total))
        loss = tf.reduce_sum(weighted_labels * modulating * neg_log_p, axis=axis)

        def grad(upstream):
            p = exp_z * inv_total
            if gamma == 0:
                h = weighted_labels
            else:
                one_minus_p = total_without_class * inv_total
                has_others = total_without_class > 0
                ratio = tf.where(
                    has_others, neg_log_p / tf.where(has_others, one_minus_p, 1.0), 1.0
                )
                h = weighted_labels * modulating * (gamma * p * ratio + 1.0)
            h_total = tf.reduce_sum(h, axis=axis, keepdims=True)
            return tf.expand_dims(upstream, axis) * (p * h_total - h)

        return loss, grad

    return focal_cross_entropy(logits)


def _categorical_terms_from_probabilities(probabilities, axis: int):
    # Keras renormalises so that the classes sum to 1, then clips.
    p = probabilities / tf.reduce_sum(probabilities, axis=axis, keepdims=True)
    p = tf.clip_by_value(p, EPSILON, 1.0 - EPSILON)
    return tf.math.log(p), tf.math.log(1.0 - p)


def _categorical_focal(labels, y_pred, *, gamma, alpha, from_logits, axis, class_weight):
    """sum over `axis` of alpha_c w_c (1 - p_c)^gamma (-t_c log p_c)."""
    dtype = y_pred.dtype
    rank = y_pred.shape.rank
    weighted_labels = labels
    if isinstance(alpha, np.ndarray):
        weighted_labels = _along_axis(alpha, rank, axis, dtype) * weighted_labels
    elif alpha != 1.0:
        weighted_labels = alpha * weighted_labels
    if class_weight is not None:
        weighted_labels = _along_axis(class_weight, rank, axis, dtype) * weighted_labels
    if from_logits:
        return _categorical_focal_from_logits(weighted_labels, y_pred, gamma, axis)
    log_p, log_one_minus_p = _categorical_terms_from_probabilities(y_pred, axis)
    # multiply_no_nan: a label of 0 times log p = -inf stays 0, as in the formula.
    cross_entropy = -tf.math.multiply_no_nan(log_p, weighted_labels)
    loss = cross_entropy if gamma == 0 else tf.exp(gamma * log_one_minus_p) * cross_entropy
    return tf.reduce_sum(loss, axis=axis)


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
) -> tf.Tensor:
    r"""Categorical focal cross-entropy (Keras 3 semantics), one value per example.

    With labels smoothed as t = y (1 - s) + s / C and p = softmax(y_pred) along `axis`
    (or the renormalised, clipped probabilities):

        l = sum_c alpha_c * w_c * (1 - p_c)^gamma * (-t_c log p_c)

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

    Returns:
      The per-example loss: y_pred's shape without `axis`.

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    gamma = _validation.check_gamma(gamma)
    label_smoothing = _validation.check_unit_interval("label_smoothing", label_smoothing)
    y_true, y_pred, _ = _prepare(y_true, y_pred)
    rank = y_pred.shape.rank
    axis = _check_axis(axis, rank)
    num_classes = y_pred.shape[axis] if rank is not None else None
    alpha = _validation.check_alpha_vector(alpha, num_classes)
    weights = _validation.categorical_class_weight(class_weight, num_classes)
    with tf.control_dependencies(_validation.check_same_shape(y_true, y_pred)):
        labels = tf.identity(y_true)
    if label_smoothing:
        # The class axis, not the last one (keras-team/keras#23437 fixed the same).
        num_labels = tf.cast(tf.shape(labels)[axis], labels.dtype)
        labels = labels * (1.0 - label_smoothing) + label_smoothing / num_labels
    return _categorical_focal(
        labels,
        y_pred,
        gamma=gamma,
        alpha=alpha,
        from_logits=from_logits,
        axis=axis,
        class_weight=weights,
    )


def _sparse_labels(y_true, y_pred=None) -> tf.Tensor:
    """Integer labels with a trailing unit axis squeezed (Keras passes [B, 1] or [B])."""
    labels = tf.convert_to_tensor(y_true)
    if labels.dtype.is_floating:
        labels = tf.cast(labels, tf.int64)  # Keras's Loss.__call__ casts labels to float.
    rank = None if y_pred is None else y_pred.shape.rank
    squeezable = labels.shape.rank is not None and labels.shape.rank >= 2 and labels.shape[-1] == 1
    if squeezable and (rank is None or labels.shape.rank == rank):
        labels = tf.squeeze(labels, axis=-1)
    if rank is not None and labels.shape.rank is not None and labels.shape.rank != rank - 1:
        raise ValueError(
            f"y_true must hold one class id per example (y_pred's shape without the class "
            f"axis); got y_true {labels.shape} and y_pred {y_pred.shape}"
        )
    return labels


def sparse_categorical_focal_crossentropy(
    y_true,
    y_pred,
    *,
    gamma: float = 2.0,
    alpha=0.25,
    from_logits: bool = False,
    axis: int = -1,
    class_weight=None,
    ignore_class: int | None = None,
) -> tf.Tensor:
    r"""Categorical focal cross-entropy with integer labels, one value per example.

    For the label y of an example and p = softmax(y_pred) along `axis`:

        l = alpha_y * w_y * (1 - p_y)^gamma * (-log p_y)

    and l = 0 where y == ignore_class. Such examples are not counted either: pass
    `ignored_example_mask(y_true, ignore_class)` as `mask=` to `compute_global_loss`
    (the Loss class does this through the Keras mask).

    Args:
      y_true: integer class ids in [0, C) (or ignore_class), shape of y_pred without
        `axis` (a trailing unit axis is squeezed).
      y_pred: logits or probabilities with C classes along `axis`; any float dtype.
      gamma, alpha, from_logits, axis, class_weight: as in categorical_focal_crossentropy.
      ignore_class: an id whose examples contribute 0 (e.g. -1 or 255 for "void").

    Returns:
      The per-example loss, y_true's shape.

    Raises:
      tf.errors.InvalidArgumentError: at run time, for a label outside [0, C) that is not
        ignore_class (XLA drops this check; such labels then contribute 0).
    """
    gamma = _validation.check_gamma(gamma)
    y_pred = tf.convert_to_tensor(y_pred)
    y_pred = tf.cast(y_pred, compute_dtype(y_pred.dtype))
    rank = y_pred.shape.rank
    axis = _check_axis(axis, rank)
    num_classes = y_pred.shape[axis] if rank is not None else None
    if num_classes is None:
        raise ValueError(f"y_pred's class axis {axis} must have a static size, got {y_pred.shape}")
    alpha = _validation.check_alpha_vector(alpha, num_classes)
    weights = _validation.categorical_class_weight(class_weight, num_classes)
    labels = _sparse_labels(y_true, y_pred)
    valid = tf.ones_like(labels, dtype=tf.bool)
    if ignore_class is not None:
        valid = tf.not_equal(labels, tf.cast(ignore_class, labels.dtype))
    checked = tf.where(valid, labels, tf.zeros_like(labels))
    asserts = [
        tf.debugging.assert_non_negative(
            checked, message=f"y_true: class ids must be in [0, {num_classes})"
        ),
        tf.debugging.assert_less(
            checked,
            tf.cast(num_classes, checked.dtype),
            message=f"y_true: class ids must be in [0, {num_classes})",
        ),
    ]
    with tf.control_dependencies(asserts):
        # one_hot of an ignored id is made an all-zero row, so its loss is exactly 0.
        one_hot = tf.one_hot(
            tf.where(valid, labels, -tf.ones_like(labels)),
            num_classes,
            axis=axis % rank,
            dtype=y_pred.dtype,
        )
    return _categorical_focal(
        one_hot,
        y_pred,
        gamma=gamma,
        alpha=alpha,
        from_logits=from_logits,
        axis=axis,
        class_weight=weights,
    )


def ignored_example_mask(y_true, ignore_class: int | None) -> tf.Tensor | None:
    """True for examples whose label is not `ignore_class` (None when nothing is ignored)."""
    if ignore_class is None:
        return None
    labels = _sparse_labels(y_true)
    return tf.not_equal(labels, tf.cast(ignore_class, labels.dtype))
