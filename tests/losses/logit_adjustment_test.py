"""Logit adjustment against Menon et al.'s formulas in NumPy float64, and its post-hoc form."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from focal_dist import losses as fl
from tests.losses import numpy_reference as ref
from tests.losses.gradient_check import finite_difference_gradient, loss_and_gradient

COUNTS = np.array([500, 120, 40, 9, 5])
LOG_PRIOR = np.log(COUNTS / COUNTS.sum())


def _inputs(seed, batch=12, classes=5):
    rng = np.random.default_rng(seed)
    return rng.integers(0, classes, batch), rng.normal(scale=3.0, size=(batch, classes))


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("ignore_class", [None, -1])
def test_softmax_form_matches_numpy_float64(tau, ignore_class):
    labels, logits = _inputs(1)
    if ignore_class is not None:
        labels[[2, 7]] = ignore_class
    ours = fl.logit_adjusted_crossentropy(
        labels, logits, log_prior=LOG_PRIOR, tau=tau, ignore_class=ignore_class
    )
    expected = ref.logit_adjusted(
        labels, logits, log_prior=LOG_PRIOR, tau=tau, ignore_class=ignore_class
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


def test_tau_zero_is_keras_sparse_categorical_crossentropy():
    labels, logits = _inputs(2)
    ours = fl.logit_adjusted_crossentropy(labels, logits, log_prior=LOG_PRIOR, tau=0.0)
    keras_ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    np.testing.assert_allclose(ours.numpy(), np.asarray(keras_ce), rtol=1e-10)


def test_a_constant_shift_of_the_log_prior_changes_nothing():
    labels, logits = _inputs(3)
    ours = fl.logit_adjusted_crossentropy(labels, logits, log_prior=LOG_PRIOR)
    shifted = fl.logit_adjusted_crossentropy(labels, logits, log_prior=np.log(COUNTS))
    np.testing.assert_allclose(ours.numpy(), shifted.numpy(), rtol=1e-12)


def test_class_axis_other_than_last():
    labels, logits = _inputs(4, batch=6)
    moved = np.moveaxis(np.stack([logits, logits[::-1]], -1), 1, -1)  # [6, 2, 5]
    stacked = np.stack([labels, labels[::-1]], -1)
    ours = fl.logit_adjusted_crossentropy(
        stacked, np.moveaxis(moved, -1, 1), log_prior=LOG_PRIOR, axis=1
    )
    expected = ref.logit_adjusted(stacked, moved, log_prior=LOG_PRIOR)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("tau", [0.0, 1.0, 1.7])
@pytest.mark.parametrize("positive_rate", [0.05, [0.01, 0.3, 0.5, 0.9]])
def test_sigmoid_form_matches_numpy_float64(tau, positive_rate):
    rng = np.random.default_rng(5)
    y_true = (rng.random((9, 4)) < 0.2).astype(np.float64)
    logits = rng.normal(scale=3.0, size=(9, 4))
    ours = fl.logit_adjusted_binary_crossentropy(
        y_true, logits, positive_rate=positive_rate, tau=tau
    )
    expected = ref.logit_adjusted_binary(y_true, logits, positive_rate=positive_rate, tau=tau)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


def test_sigmoid_form_with_rate_one_half_is_plain_binary_crossentropy():
    rng = np.random.default_rng(6)
    y_true, logits = (rng.random((5, 3)) < 0.5).astype(float), rng.normal(size=(5, 3))
    ours = fl.logit_adjusted_binary_crossentropy(y_true, logits, positive_rate=0.5)
    keras_bce = keras.losses.binary_crossentropy(y_true, logits, from_logits=True)
    np.testing.assert_allclose(ours.numpy(), np.asarray(keras_bce), rtol=1e-10)


def test_gradients_match_float64_finite_differences():
    labels, logits = _inputs(7, batch=4)
    _, grad = loss_and_gradient(
        fl.logit_adjusted_crossentropy, labels, logits, tf.float64, log_prior=LOG_PRIOR, tau=1.3
    )
    numeric = finite_difference_gradient(
        lambda x: ref.logit_adjusted(labels, x, log_prior=LOG_PRIOR, tau=1.3).sum(), logits
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_post_hoc_adjustment_subtracts_tau_log_prior_and_its_binary_form_the_log_odds():
    _, logits = _inputs(8)
    adjusted = fl.adjust_logits(logits, log_prior=LOG_PRIOR, tau=0.7)
    np.testing.assert_allclose(adjusted.numpy(), logits - 0.7 * LOG_PRIOR, rtol=1e-12)
    rate = np.array([0.1, 0.2, 0.3, 0.4, 0.9])
    binary = fl.adjust_binary_logits(logits, positive_rate=rate, tau=2.0)
    np.testing.assert_allclose(binary.numpy(), logits - 2.0 * np.log(rate / (1 - rate)), rtol=1e-12)


def test_training_on_adjusted_logits_is_predicting_with_post_hoc_adjusted_ones():
    # The loss form's model logits f give the loss of f + tau log pi; the post-hoc form
    # undoes the same offset: adjust_logits(f + tau log pi) == f.
    _, logits = _inputs(9)
    trained_with_prior = logits + 1.5 * LOG_PRIOR
    undone = fl.adjust_logits(trained_with_prior, log_prior=LOG_PRIOR, tau=1.5)
    np.testing.assert_allclose(undone.numpy(), logits, rtol=1e-12, atol=1e-12)


def test_log_prior_from_counts_is_the_log_share_and_refuses_empty_classes():
    np.testing.assert_allclose(fl.log_prior_from_counts(COUNTS), LOG_PRIOR, rtol=1e-15)
    with pytest.raises(ValueError, match=r"classes \[1, 3\] have no examples"):
        fl.log_prior_from_counts([5, 0, 3, 0])
    with pytest.raises(ValueError, match=r"counts.*>= 0.*-1"):
        fl.log_prior_from_counts([5, -1])


@pytest.mark.parametrize(
    ("fn", "kwargs", "match"),
    [
        (
            fl.logit_adjusted_crossentropy,
            dict(log_prior=[0.0, 0.0]),
            r"log_prior has 2 entries.*5 classes",
        ),
        (
            fl.logit_adjusted_crossentropy,
            dict(log_prior=0.0),
            r"log_prior.*one log class prior per class.*0\.0",
        ),
        (
            fl.logit_adjusted_crossentropy,
            dict(log_prior=[0, 0, 0, 0, -np.inf]),
            r"log_prior.*finite.*-inf",
        ),
        (fl.logit_adjusted_crossentropy, dict(log_prior=LOG_PRIOR, tau=-1.0), r"tau.*>= 0.*-1\.0"),
        (
            fl.logit_adjusted_binary_crossentropy,
            dict(positive_rate=0.0),
            r"positive_rate.*\(0, 1\).*0\.0",
        ),
        (
            fl.logit_adjusted_binary_crossentropy,
            dict(positive_rate=[0.5, 1.0, 0.5, 0.5, 0.5]),
            r"positive_rate.*1\.0",
        ),
        (
            fl.logit_adjusted_binary_crossentropy,
            dict(positive_rate=[0.5, 0.5]),
            r"positive_rate has 2 entries.*5 outputs",
        ),
        (fl.adjust_logits, dict(log_prior=[0.0]), r"log_prior has 1 entries"),
    ],
)
def test_bad_arguments_raise_naming_argument_value_and_expectation(fn, kwargs, match):
    labels, logits = _inputs(10)
    y_true = labels if fn is fl.logit_adjusted_crossentropy else np.zeros((12, 5))
    args = (logits,) if fn is fl.adjust_logits else (y_true, logits)
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)
