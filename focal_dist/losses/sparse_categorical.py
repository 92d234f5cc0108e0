"""Categorical focal cross-entropy with integer labels, and the mask of ignored examples."""

from __future__ import annotations

import tensorflow as tf

from focal_dist.losses import _class_weight, _numerics, _validation
from focal_dist.losses.categorical import categorical_focal, check_focusing


def sparse_labels(y_true, y_pred=None) -> tf.Tensor:
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


def sparse_one_hot(y_true, y_pred, *, axis: int, num_classes: int, ignore_class) -> tf.Tensor:
    """One-hot labels along `axis`; an all-zero row where y == ignore_class.

    Raises (at run time, outside XLA) for a label outside [0, C) that is not ignore_class.
    """
    labels = sparse_labels(y_true, y_pred)
    valid = tf.ones_like(labels, dtype=tf.bool)
    if ignore_class is not None:
        valid = tf.not_equal(labels, tf.cast(ignore_class, labels.dtype))
    checked = tf.where(valid, labels, tf.zeros_like(labels))
    message = f"y_true: class ids must be in [0, {num_classes})"
    asserts = [
        tf.debugging.assert_non_negative(checked, message=message),
        tf.debugging.assert_less(checked, tf.cast(num_classes, checked.dtype), message=message),
    ]
    with tf.control_dependencies(asserts):
        # one_hot of an ignored id is made an all-zero row, so its loss is exactly 0.
        return tf.one_hot(
            tf.where(valid, labels, -tf.ones_like(labels)),
            num_classes,
            axis=axis % y_pred.shape.rank,
            dtype=y_pred.dtype,
        )


def static_classes(y_pred, axis) -> tuple[tf.Tensor, int, int]:
    """(y_pred in its compute dtype, the checked axis, the static number of classes)."""
    y_pred = tf.convert_to_tensor(y_pred)
    y_pred = tf.cast(y_pred, _numerics.compute_dtype(y_pred.dtype))
    rank = y_pred.shape.rank
    axis = _validation.check_axis(axis, rank)
    num_classes = y_pred.shape[axis] if rank is not None else None
    if num_classes is None:
        raise ValueError(f"y_pred's class axis {axis} must have a static size, got {y_pred.shape}")
    return y_pred, axis, num_classes


# Python-only control flow: autograph's source rewrite at every trace is pure cost.
@tf.autograph.experimental.do_not_convert
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
    gamma_schedule: str | None = None,
    poly_epsilon: float = 0.0,
) -> tf.Tensor:
    r"""Categorical focal cross-entropy with integer labels, one value per example.

    For the label y of an example and p = softmax(y_pred) along `axis`:

        l = alpha_y * w_y * (1 - p_y)^gamma_y * (-log p_y + epsilon (1 - p_y))

    and l = 0 where y == ignore_class. Such examples are not counted either: pass
    `ignored_example_mask(y_true, ignore_class)` as `mask=` to `compute_global_loss`
    (the Loss class does this through the Keras mask).

    Args:
      y_true: integer class ids in [0, C) (or ignore_class), shape of y_pred without
        `axis` (a trailing unit axis is squeezed).
      y_pred: logits or probabilities with C classes along `axis`; any float dtype.
      gamma, alpha, from_logits, axis, class_weight, gamma_schedule, poly_epsilon: as in
        categorical_focal_crossentropy.
      ignore_class: an id whose examples contribute 0 (e.g. -1 or 255 for "void").

    Returns:
      The per-example loss, y_true's shape.

    Raises:
      tf.errors.InvalidArgumentError: at run time, for a label outside [0, C) that is not
        ignore_class (XLA drops this check; such labels then contribute 0).

    References:
      Lin et al. 2017; Mukhoti et al. 2020; Leng et al. 2022 (see
      categorical_focal_crossentropy).
    """
    focusing = check_focusing(gamma, gamma_schedule, poly_epsilon)
    ignore_class = _validation.check_ignore_class(ignore_class)
    y_pred, axis, num_classes = static_classes(y_pred, axis)
    alpha = _validation.check_alpha_vector(alpha, num_classes)
    weights = _class_weight.categorical_class_weight(class_weight, num_classes)
    one_hot = sparse_one_hot(
        y_true, y_pred, axis=axis, num_classes=num_classes, ignore_class=ignore_class
    )
    return categorical_focal(
        one_hot,
        y_pred,
        alpha=alpha,
        class_weight=weights,
        from_logits=from_logits,
        axis=axis,
        **focusing,
    )


def ignored_example_mask(y_true, ignore_class: int | None) -> tf.Tensor | None:
    """True for examples whose label is not `ignore_class` (None when nothing is ignored)."""
    if ignore_class is None:
        return None
    labels = sparse_labels(y_true)
    return tf.not_equal(labels, tf.cast(ignore_class, labels.dtype))
