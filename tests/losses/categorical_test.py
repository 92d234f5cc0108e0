"""The softmax focal losses' additions against NumPy in float64: the FLSD-53 schedule and
Poly-1, dense and sparse (tests/losses/focal_test.py holds Keras parity)."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import losses as fl
from tests.losses import numpy_reference as ref
from tests.losses.gradient_check import finite_difference_gradient, loss_and_gradient


def _inputs(shape, from_logits, seed, axis=-1):
    rng = np.random.default_rng(seed)
    num_classes = shape[axis]
    ids = rng.integers(0, num_classes, [s for i, s in enumerate(shape) if i != axis % len(shape)])
    y_true = np.moveaxis(np.eye(num_classes)[ids], -1, axis)
    y_pred = rng.uniform(-3, 3, shape) if from_logits else rng.uniform(0.05, 1.0, shape)
    return ids, y_true, y_pred


GRID = list(
    itertools.product(
        [0.0, 0.5, 2.0],  # gamma
        [None, "flsd53"],  # gamma_schedule
        [0.0, -1.0, 2.0],  # poly_epsilon
        [False, True],  # from_logits
        [0.0, 0.1],  # label_smoothing
    )
)


@pytest.mark.parametrize(("gamma", "schedule", "epsilon", "from_logits", "smoothing"), GRID)
def test_dense_schedule_and_poly_match_numpy_float64(
    gamma, schedule, epsilon, from_logits, smoothing
):
    _, y_true, y_pred = _inputs((3, 5, 2), from_logits, seed=1, axis=1)
    kwargs = dict(
        gamma=gamma,
        gamma_schedule=schedule,
        poly_epsilon=epsilon,
        from_logits=from_logits,
        label_smoothing=smoothing,
        alpha=[0.1, 0.3, 0.5, 0.7, 1.0],
        class_weight=[1.0, 2.0, 0.5, 0.0, 3.0],
        axis=1,
    )
    ours = fl.categorical_focal_crossentropy(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(
        ours.numpy(), ref.categorical_focal(y_true, y_pred, **kwargs), rtol=1e-10
    )


@pytest.mark.parametrize(
    ("gamma", "schedule", "epsilon", "from_logits"), [g[:4] for g in GRID[::2]]
)
def test_sparse_schedule_and_poly_match_a_numpy_loop(gamma, schedule, epsilon, from_logits):
    ids, _, y_pred = _inputs((8, 4), from_logits, seed=2)
    ids[[1, 5]] = -1
    kwargs = dict(
        gamma=gamma,
        gamma_schedule=schedule,
        poly_epsilon=epsilon,
        from_logits=from_logits,
        alpha=np.array([0.2, 0.4, 0.6, 0.8]),
        ignore_class=-1,
    )
    ours = fl.sparse_categorical_focal_crossentropy(ids, y_pred, **kwargs)
    np.testing.assert_allclose(ours.numpy(), ref.sparse_focal(ids, y_pred, **kwargs), rtol=1e-10)


def test_flsd53_one_hot_is_the_authors_adaptive_focal_loss():
    # Mukhoti et al.'s FocalLossAdaptive(gamma=3): -(1 - p_t)^gamma_t log p_t with
    # gamma_t = 5 for p_t < 0.2, 3 for 0.2 <= p_t < 0.5, and 3 from 0.5 on.
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2.0, size=(40, 5))
    labels = rng.integers(0, 5, 40)
    p_t = ref.softmax(logits, -1)[np.arange(40), labels]
    assert (p_t < 0.2).any()
    assert (p_t >= 0.5).any()
    gamma = np.where(p_t < 0.2, 5.0, np.where(p_t < 0.5, 3.0, 3.0))
    expected = -((1 - p_t) ** gamma) * np.log(p_t)
    ours = fl.sparse_categorical_focal_crossentropy(
        labels, logits, alpha=1.0, gamma_schedule="flsd53", from_logits=True
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_poly_epsilon_with_gamma_zero_is_poly1_cross_entropy(smoothing):
    # Leng et al.'s Poly-1 with smoothed labels t: CE(t) + epsilon (1 - sum_c t_c p_c).
    _, y_true, logits = _inputs((6, 4), True, seed=4)
    t = y_true * (1 - smoothing) + smoothing / 4
    p = ref.softmax(logits, -1)
    expected = -(t * np.log(p)).sum(-1) + 2.0 * (1 - (t * p).sum(-1))
    ours = fl.categorical_focal_crossentropy(
        y_true,
        logits,
        gamma=0.0,
        alpha=1.0,
        poly_epsilon=2.0,
        from_logits=True,
        label_smoothing=smoothing,
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.3, 2.0])
@pytest.mark.parametrize("epsilon", [-1.0, 1.0])
def test_gradient_with_poly_matches_float64_finite_differences(gamma, epsilon):
    _, y_true, logits = _inputs((5, 4), True, seed=5)
    logits[0] = [30.0, -30.0, 0.0, 1.0]  # a saturated row
    kwargs = dict(
        gamma=gamma,
        poly_epsilon=epsilon,
        alpha=[0.2, 0.4, 0.6, 0.8],
        from_logits=True,
        label_smoothing=0.1,
    )
    _, grad = loss_and_gradient(
        fl.categorical_focal_crossentropy, y_true, logits, tf.float64, **kwargs
    )
    numeric = finite_difference_gradient(
        lambda x: ref.categorical_focal(y_true, x, **kwargs).sum(), logits
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("epsilon", [0.0, 1.0])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_flsd53_gradient_holds_the_schedule_constant(epsilon, smoothing):
    _, y_true, logits = _inputs((6, 4), True, seed=6)
    kwargs = dict(alpha=1.0, poly_epsilon=epsilon, from_logits=True, label_smoothing=smoothing)
    _, grad = loss_and_gradient(
        fl.categorical_focal_crossentropy,
        y_true,
        logits,
        tf.float64,
        gamma_schedule="flsd53",
        **kwargs,
    )
    frozen = ref.flsd53_gamma(ref.softmax(logits, -1))
    numeric = finite_difference_gradient(
        lambda x: ref.categorical_focal(y_true, x, gamma=frozen, **kwargs).sum(), logits
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_sparse_equals_dense_on_one_hot_labels_with_schedule_and_poly():
    ids, y_true, logits = _inputs((20, 6), True, seed=7)
    kwargs = dict(gamma_schedule="flsd53", poly_epsilon=1.0, from_logits=True)
    sparse = fl.sparse_categorical_focal_crossentropy(ids, logits, **kwargs)
    dense = fl.categorical_focal_crossentropy(y_true, logits, **kwargs)
    np.testing.assert_allclose(sparse.numpy(), dense.numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    ("fn", "kwargs", "match"),
    [
        (fl.categorical_focal_crossentropy, dict(poly_epsilon=-3), r"poly_epsilon.*-3"),
        (fl.categorical_focal_crossentropy, dict(gamma_schedule=5), r"gamma_schedule.*5"),
        (fl.sparse_categorical_focal_crossentropy, dict(poly_epsilon="1"), r"poly_epsilon.*'1'"),
        (fl.sparse_categorical_focal_crossentropy, dict(ignore_class=2.5), r"ignore_class.*2\.5"),
    ],
)
def test_bad_new_arguments_raise_naming_argument_value_and_expectation(fn, kwargs, match):
    y_pred = np.zeros((4, 3))
    y_true = np.eye(3)[[0, 1, 2, 0]] if fn is fl.categorical_focal_crossentropy else [0, 1, 2, 0]
    with pytest.raises(ValueError, match=match):
        fn(y_true, y_pred, **kwargs)
