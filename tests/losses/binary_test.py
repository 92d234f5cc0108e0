"""binary_focal_crossentropy's additions against NumPy in float64: per-output alpha,
the FLSD-53 gamma schedule and Poly-1 (tests/losses/focal_test.py holds Keras parity)."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import losses as fl
from tests.losses import numpy_reference as ref
from tests.losses.gradient_check import finite_difference_gradient, loss_and_gradient


def _inputs(shape, from_logits, seed):
    rng = np.random.default_rng(seed)
    y_true = (rng.random(shape) < 0.4).astype(np.float64)
    y_pred = rng.uniform(-4, 4, shape) if from_logits else rng.uniform(0.02, 0.98, shape)
    return y_true, y_pred


def _ours(y_true, y_pred, **kwargs):
    kwargs["apply_class_balancing"] = kwargs.pop("balance", False)
    return fl.binary_focal_crossentropy(y_true, y_pred, **kwargs).numpy()


GRID = list(
    itertools.product(
        [0.0, 0.5, 2.0, 3.5],  # gamma
        [None, "flsd53"],  # gamma_schedule
        [0.0, -1.0, 1.0, 4.0],  # poly_epsilon
        [False, True],  # from_logits
        [0.0, 0.1],  # label_smoothing
    )
)


@pytest.mark.parametrize(("gamma", "schedule", "epsilon", "from_logits", "smoothing"), GRID)
def test_schedule_and_poly_match_numpy_float64(gamma, schedule, epsilon, from_logits, smoothing):
    y_true, y_pred = _inputs((7, 3), from_logits, seed=1)
    kwargs = dict(
        gamma=gamma,
        gamma_schedule=schedule,
        poly_epsilon=epsilon,
        from_logits=from_logits,
        label_smoothing=smoothing,
        alpha=[0.2, 0.5, 0.9],
        balance=True,
        class_weight=[0.5, 2.0],
    )
    np.testing.assert_allclose(
        _ours(y_true, y_pred, **kwargs), ref.binary_focal(y_true, y_pred, **kwargs), rtol=1e-10
    )


@pytest.mark.parametrize(("shape", "axis"), [((6, 4), -1), ((6, 4), 0), ((2, 4, 3), 1)])
@pytest.mark.parametrize("from_logits", [False, True])
def test_per_output_alpha_weights_each_output_along_the_axis(shape, axis, from_logits):
    y_true, y_pred = _inputs(shape, from_logits, seed=2)
    alpha = np.linspace(0.05, 0.95, shape[axis])
    kwargs = dict(gamma=2.0, alpha=alpha, balance=True, from_logits=from_logits, axis=axis)
    np.testing.assert_allclose(
        _ours(y_true, y_pred, **kwargs), ref.binary_focal(y_true, y_pred, **kwargs), rtol=1e-10
    )


def test_per_output_alpha_of_equal_entries_is_the_scalar_alpha():
    y_true, logits = _inputs((5, 3), True, seed=3)
    kwargs = dict(gamma=2.0, apply_class_balancing=True, from_logits=True)
    scalar = fl.binary_focal_crossentropy(y_true, logits, alpha=0.7, **kwargs)
    vector = fl.binary_focal_crossentropy(y_true, logits, alpha=[0.7, 0.7, 0.7], **kwargs)
    np.testing.assert_array_equal(scalar.numpy(), vector.numpy())


def test_per_output_alpha_applies_only_with_class_balancing_as_keras_alpha_does():
    y_true, logits = _inputs((5, 3), True, seed=4)
    plain = fl.binary_focal_crossentropy(y_true, logits, from_logits=True)
    ignored = fl.binary_focal_crossentropy(y_true, logits, alpha=[0.1, 0.2, 0.3], from_logits=True)
    np.testing.assert_array_equal(plain.numpy(), ignored.numpy())


def test_flsd53_is_gamma_5_below_p_t_of_0_2_and_gamma_3_above():
    # One positive per row; logits put p_t at 0.1, 0.19, 0.21, 0.4, 0.6 and 0.99.
    p_t = np.array([0.1, 0.19, 0.21, 0.4, 0.6, 0.99])
    logits = np.log(p_t / (1 - p_t))[:, None]
    y_true = np.ones_like(logits)
    ours = fl.binary_focal_crossentropy(y_true, logits, gamma_schedule="flsd53", from_logits=True)
    gamma = np.where(p_t < 0.2, 5.0, 3.0)
    np.testing.assert_allclose(ours.numpy(), -((1 - p_t) ** gamma) * np.log(p_t), rtol=1e-12)


def test_poly_epsilon_with_gamma_zero_is_poly1_cross_entropy():
    # Leng et al.'s Poly-1: -log p_t + epsilon (1 - p_t).
    y_true, logits = _inputs((6, 2), True, seed=5)
    p = 1 / (1 + np.exp(-logits))
    p_t = y_true * p + (1 - y_true) * (1 - p)
    ours = fl.binary_focal_crossentropy(
        y_true, logits, gamma=0.0, poly_epsilon=2.0, from_logits=True
    )
    np.testing.assert_allclose(ours.numpy(), (-np.log(p_t) + 2.0 * (1 - p_t)).mean(-1), rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.7, 2.0])
@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 2.0])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_gradient_with_poly_matches_float64_finite_differences(gamma, epsilon, smoothing):
    y_true, logits = _inputs((4, 3), True, seed=6)
    kwargs = dict(gamma=gamma, poly_epsilon=epsilon, from_logits=True, label_smoothing=smoothing)
    _, grad = loss_and_gradient(fl.binary_focal_crossentropy, y_true, logits, tf.float64, **kwargs)
    numeric = finite_difference_gradient(
        lambda x: ref.binary_focal(y_true, x, **kwargs).sum(), logits
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("epsilon", [0.0, 1.0])
def test_flsd53_gradient_holds_the_schedule_constant(from_logits, epsilon):
    # The gradient of the loss with each element's gamma frozen at this point: no term
    # from d gamma_i / dx, as in the authors' code.
    rng = np.random.default_rng(7)
    y_true = (rng.random((6, 4)) < 0.5).astype(np.float64)
    logits = rng.uniform(-3, 3, (6, 4))
    y_pred = logits if from_logits else 1 / (1 + np.exp(-logits))
    kwargs = dict(from_logits=from_logits, label_smoothing=0.1, poly_epsilon=epsilon)
    _, grad = loss_and_gradient(
        fl.binary_focal_crossentropy, y_true, y_pred, tf.float64, gamma_schedule="flsd53", **kwargs
    )
    t = y_true * 0.95 + 0.025
    p = 1 / (1 + np.exp(-logits))
    frozen = ref.flsd53_gamma(t * p + (1 - t) * (1 - p))
    numeric = finite_difference_gradient(
        lambda x: ref.binary_focal(y_true, x, gamma=frozen, **kwargs).sum(), y_pred, h=1e-7
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(poly_epsilon=-1.5), r"poly_epsilon.*>= -1.*-1\.5"),
        (dict(poly_epsilon=float("inf")), r"poly_epsilon.*inf"),
        (dict(gamma_schedule="flsd"), r"gamma_schedule.*flsd53.*'flsd'"),
        (dict(alpha=[0.1, 0.2]), r"alpha has 2 entries but y_pred has 3 outputs"),
        (dict(alpha=[0.1, 0.2, 1.5]), r"alpha entries must be in \[0, 1\].*1\.5"),
        (dict(alpha=[[0.1, 0.2, 0.3]]), r"alpha.*1-D.*\(1, 3\)"),
    ],
)
def test_bad_new_arguments_raise_naming_argument_value_and_expectation(kwargs, match):
    y = np.eye(3)[[0, 1, 2, 0]]
    with pytest.raises(ValueError, match=match):
        fl.binary_focal_crossentropy(y, y, **kwargs)
