"""class_weight arguments, normalised to arrays: {0: w, 1: w}, sequences, (2, C) arrays.

Errors name the argument, the value received and what was expected.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf


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


def class_weight_entries(class_weight):
    """The shape-free part of a class_weight check: entries finite and >= 0."""
    if class_weight is None:
        return None
    if isinstance(class_weight, Mapping):
        bad = [k for k in class_weight if not isinstance(k, numbers.Integral) or k < 0]
        if bad:
            raise ValueError(f"class_weight keys must be class ids >= 0, got {bad}")
        class_weight = list(class_weight.values())
    _weights_array("class_weight", class_weight)
    return class_weight


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
