"""Argument checks shared by the focal losses.

Every error names the argument, the value received and what was expected. Checks of
Python values run when the graph is traced; checks that depend on tensor values are
`tf.debugging` asserts (an `InvalidArgumentError` at run time; XLA drops them).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf


def check_gamma(gamma) -> float:
    if not isinstance(gamma, numbers.Real) or isinstance(gamma, bool):
        raise ValueError(f"gamma must be a real number >= 0, got {gamma!r}")
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    return float(gamma)


def check_unit_interval(name: str, value) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def check_alpha_vector(alpha, num_classes: int | None):
    """`alpha` for categorical losses: a scalar or one entry per class, each in [0, 1]."""
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        return check_unit_interval("alpha", alpha)
    values = np.asarray(alpha, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(
            f"alpha must be a scalar or a 1-D sequence with one entry per class, "
            f"got shape {values.shape}"
        )
    if num_classes is not None and values.shape[0] != num_classes:
        raise ValueError(
            f"alpha has {values.shape[0]} entries but y_pred has {num_classes} classes; "
            "expected a scalar or one entry per class"
        )
    if np.any(~np.isfinite(values)) or np.any(values < 0) or np.any(values > 1):
        raise ValueError(f"alpha entries must be in [0, 1], got {values.tolist()}")
    return values


def _weights_array(name: str, value) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers, got {value!r}") from exc
    if np.any(~np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} entries must be finite and >= 0, got {array.tolist()}")
    return array


def _dict_to_vector(name: str, mapping: Mapping, num_classes: int) -> list[float]:
    keys = sorted(mapping)
    bad = [k for k in keys if not isinstance(k, numbers.Integral) or not 0 <= k < num_classes]
    if bad:
        raise ValueError(f"{name} keys must be class ids in [0, {num_classes}), got {bad}")
    missing = sorted(set(range(num_classes)) - set(keys))
    if missing:
        raise ValueError(
            f"{name} has no weight for classes {missing}; expected one weight for each of "
            f"the {num_classes} classes"
        )
    return [float(mapping[k]) for k in range(num_classes)]


def binary_class_weight(class_weight, num_outputs: int | None) -> np.ndarray | None:
    """Normalises a binary/multi-label `class_weight` to an array of shape [2] or [2, C].

    Accepted: {0: w_neg, 1: w_pos}; a length-2 sequence (w_neg, w_pos); an array of shape
    [2, C] whose row 0 holds the negative and row 1 the positive weight of each output.
    """
    if class_weight is None:
        return None
    if isinstance(class_weight, Mapping):
        class_weight = _dict_to_vector("class_weight", class_weight, 2)
    array = _weights_array("class_weight", class_weight)
    if array.shape == (2,):
        return array
    if array.ndim == 2 and array.shape[0] == 2:
        if num_outputs is not None and array.shape[1] != num_outputs:
            raise ValueError(
                f"class_weight has shape {array.shape} but y_pred has {num_outputs} outputs "
                f"on the class axis; expected shape (2, {num_outputs})"
            )
        return array
    raise ValueError(
        f"class_weight for a binary or multi-label loss must be a {{0: w, 1: w}} dict, a "
        f"length-2 sequence (negative, positive) or an array of shape (2, C); got shape "
        f"{array.shape}"
    )


def categorical_class_weight(class_weight, num_classes: int | None) -> np.ndarray | None:
    """Normalises a categorical `class_weight` to a vector of shape [C]."""
    if class_weight is None:
        return None
    if num_classes is None:
        raise ValueError(
            "class_weight needs the number of classes, but y_pred's class axis has no static size"
        )
    if isinstance(class_weight, Mapping):
        class_weight = _dict_to_vector("class_weight", class_weight, num_classes)
    elif not isinstance(class_weight, Sequence | np.ndarray | tf.Tensor):
        raise ValueError(
            f"class_weight must be a dict or a sequence of {num_classes} weights, got "
            f"{type(class_weight).__name__}"
        )
    array = _weights_array("class_weight", class_weight)
    if array.shape != (num_classes,):
        raise ValueError(
            f"class_weight has shape {array.shape}; expected ({num_classes},), one weight per class"
        )
    return array


def check_same_shape(y_true: tf.Tensor, y_pred: tf.Tensor) -> list:
    """Raises unless the shapes agree; returns run-time asserts for unknown dimensions."""
    if y_true.shape.rank is not None and y_pred.shape.rank is not None:
        if y_true.shape.rank != y_pred.shape.rank or not y_true.shape.is_compatible_with(
            y_pred.shape
        ):
            raise ValueError(
                f"y_true and y_pred must have the same shape, got y_true {y_true.shape} "
                f"and y_pred {y_pred.shape}"
            )
        if y_true.shape.is_fully_defined() and y_pred.shape.is_fully_defined():
            return []
    return [
        tf.debugging.assert_equal(
            tf.shape(y_true),
            tf.shape(y_pred),
            message="y_true and y_pred must have the same shape",
        )
    ]
