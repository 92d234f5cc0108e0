"""Argument checks shared by the losses.

Every error names the argument, the value received and what was expected. Checks of
Python values run when the graph is traced; checks that depend on tensor values are
`tf.debugging` asserts (an `InvalidArgumentError` at run time; XLA drops them).

An argument name means the same thing in every loss, so `check_argument(name, value)`
checks any loss's hyper-parameter by its name alone, without shapes: the Keras classes
call it at construction, the functions repeat the checks with the shapes they see.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from focal_dist.losses._class_weight import class_weight_entries
from focal_dist.losses._numerics import GAMMA_SCHEDULES


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def check_nonnegative(name: str, value) -> float:
    if not _is_real(value):
        raise ValueError(f"{name} must be a real number >= 0, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_gamma(gamma) -> float:
    return check_nonnegative("gamma", gamma)


def check_gamma_schedule(gamma_schedule) -> str | None:
    if gamma_schedule is not None and gamma_schedule not in GAMMA_SCHEDULES:
        raise ValueError(
            f"gamma_schedule must be None or one of {list(GAMMA_SCHEDULES)}, got {gamma_schedule!r}"
        )
    return gamma_schedule


def check_poly_epsilon(poly_epsilon) -> float:
    """Poly-1's epsilon: >= -1 keeps the leading coefficient 1 + epsilon >= 0."""
    if not _is_real(poly_epsilon) or not np.isfinite(poly_epsilon) or poly_epsilon < -1:
        raise ValueError(f"poly_epsilon must be a finite number >= -1, got {poly_epsilon!r}")
    return float(poly_epsilon)


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_axis(axis, rank: int | None) -> int:
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"axis must be an int, got {axis!r}")
    if rank is not None and not -rank <= axis < rank:
        raise ValueError(f"axis must be in [{-rank}, {rank}) for y_pred of rank {rank}, got {axis}")
    return int(axis)


def check_ignore_class(ignore_class) -> int | None:
    if ignore_class is not None and (
        isinstance(ignore_class, bool) or not isinstance(ignore_class, numbers.Integral)
    ):
        raise ValueError(f"ignore_class must be an int class id or None, got {ignore_class!r}")
    return ignore_class


def check_unit_interval(name: str, value) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def _vector(name: str, value, size: int | None, what: str) -> np.ndarray:
    """A 1-D float64 array with one entry per `what` (class or output) along the axis."""
    try:
        values = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers, got {value!r}") from exc
    if values.ndim != 1:
        raise ValueError(
            f"{name} must be a scalar or a 1-D sequence with one entry per {what}, "
            f"got shape {values.shape}"
        )
    if size is not None and values.shape[0] != size:
        plural = "classes" if what == "class" else f"{what}s"
        raise ValueError(
            f"{name} has {values.shape[0]} entries but y_pred has {size} {plural}; "
            f"expected a scalar or one entry per {what}"
        )
    return values


def check_alpha_vector(alpha, num_classes: int | None, what: str = "class"):
    """`alpha`: a scalar or one entry per class (or output), each in [0, 1]."""
    if _is_real(alpha):
        return check_unit_interval("alpha", alpha)
    values = _vector("alpha", alpha, num_classes, what)
    if np.any(~np.isfinite(values)) or np.any(values < 0) or np.any(values > 1):
        raise ValueError(f"alpha entries must be in [0, 1], got {values.tolist()}")
    return values


def check_log_prior(log_prior, num_classes: int | None) -> np.ndarray:
    """log pi_c, one finite entry per class (any constant shift gives the same softmax)."""
    if log_prior is None or _is_real(log_prior):
        raise ValueError(
            f"log_prior must be a 1-D sequence with one log class prior per class, got "
            f"{log_prior!r}"
        )
    values = _vector("log_prior", log_prior, num_classes, "class")
    if np.any(~np.isfinite(values)):
        raise ValueError(
            f"log_prior entries must be finite (a class with no examples has log prior "
            f"-inf: drop the class or give it a count), got {values.tolist()}"
        )
    return values


def check_positive_rate(positive_rate, num_outputs: int | None):
    """pi, the share of positives: a scalar or one entry per output, each in (0, 1)."""
    if positive_rate is None:
        raise ValueError("positive_rate must be a number in (0, 1) or one per output, got None")
    values = (
        np.float64(positive_rate)
        if _is_real(positive_rate)
        else _vector("positive_rate", positive_rate, num_outputs, "output")
    )
    if np.any(~np.isfinite(values)) or np.any(values <= 0) or np.any(values >= 1):
        raise ValueError(
            f"positive_rate entries must be in (0, 1) (the share of positives; an output "
            f"with none or only positives has no finite log-odds), got {values.tolist()}"
        )
    return float(values) if values.ndim == 0 else values


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


_CHECKS = {
    "gamma": check_gamma,
    "gamma_pos": lambda v: check_nonnegative("gamma_pos", v),
    "gamma_neg": lambda v: check_nonnegative("gamma_neg", v),
    "tau": lambda v: check_nonnegative("tau", v),
    "alpha": lambda v: check_alpha_vector(v, None),
    "label_smoothing": lambda v: check_unit_interval("label_smoothing", v),
    "clip": lambda v: check_unit_interval("clip", v),
    "gamma_schedule": check_gamma_schedule,
    "poly_epsilon": check_poly_epsilon,
    "axis": lambda v: check_axis(v, None),
    "class_weight": class_weight_entries,
    "ignore_class": check_ignore_class,
    "log_prior": lambda v: check_log_prior(v, None),
    "positive_rate": lambda v: check_positive_rate(v, None),
    "from_logits": lambda v: check_bool("from_logits", v),
    "apply_class_balancing": lambda v: check_bool("apply_class_balancing", v),
    "detach_focusing": lambda v: check_bool("detach_focusing", v),
}


def check_argument(name: str, value) -> None:
    """Checks a loss hyper-parameter by its name (the checks above, without shapes)."""
    check = _CHECKS.get(name)
    if check is not None:
        check(value)
