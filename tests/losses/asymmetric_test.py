"""asymmetric_loss against Ridnik et al.'s formula in NumPy float64, its gradient and its edges."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from focal_dist import losses as fl
from tests.losses import numpy_reference as ref
from tests.losses.gradient_check import finite_difference_gradient, loss_and_gradient


def _inputs(shape, from_logits, seed, soft=False):
    rng = np.random.default_rng(seed)
    y_true = rng.random(shape) if soft else (rng.random(shape) < 0.3).astype(np.float64)
    y_pred = rng.uniform(-5, 5, shape) if from_logits else rng.uniform(0.01, 0.99, shape)
    return y_true, y_pred


GRID = list(
    itertools.product(
        [0.0, 0.5, 1.0],  # gamma_pos
        [0.0, 0.7, 4.0],  # gamma_neg
        [0.0, 0.05, 0.3],  # clip
        [False, True],  # from_logits
        [((8, 3), -1), ((3, 4, 2), 1)],
    )
)


@pytest.mark.parametrize(("gamma_pos", "gamma_neg", "clip", "from_logits", "shape_axis"), GRID)
def test_matches_the_papers_formula_in_numpy_float64(
    gamma_pos, gamma_neg, clip, from_logits, shape_axis
):
    shape, axis = shape_axis
    y_true, y_pred = _inputs(shape, from_logits, seed=len(shape))
    kwargs = dict(
        gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip, from_logits=from_logits, axis=axis
    )
    expected, _ = ref.asymmetric(y_true, y_pred, **kwargs)
    ours = fl.asymmetric_loss(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)


def test_soft_labels_enter_linearly():
    y_true, logits = _inputs((6, 4), True, seed=1, soft=True)
    expected, _ = ref.asymmetric(y_true, logits, gamma_pos=1.0, from_logits=True)
    ours = fl.asymmetric_loss(y_true, logits, gamma_pos=1.0, from_logits=True)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("from_logits", [False, True])
def test_no_focusing_and_no_clip_is_binary_crossentropy(from_logits):
    y_true, y_pred = _inputs((10, 4), from_logits, seed=2)
    ours = fl.asymmetric_loss(
        y_true, y_pred, gamma_pos=0.0, gamma_neg=0.0, clip=0.0, from_logits=from_logits
    )
    bce = keras.losses.binary_crossentropy(y_true, y_pred, from_logits=from_logits)
    np.testing.assert_allclose(ours.numpy(), np.asarray(bce), rtol=1e-6)


def test_clip_discards_easy_negatives_and_leaves_positives_alone():
    # p = 0.04 and 0.049 are below clip = 0.05: a negative there adds exactly 0, and
    # so does its gradient; a positive at the same p is unaffected by the clip.
    p = np.array([[0.04, 0.049, 0.2]])
    logits = np.log(p / (1 - p))
    loss, grad = loss_and_gradient(
        fl.asymmetric_loss, np.zeros_like(p), logits, tf.float64, clip=0.05, from_logits=True
    )
    per_element, _ = ref.asymmetric(np.zeros_like(p), logits, clip=0.05, from_logits=True, axis=0)
    assert per_element[:2].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(grad[0, :2], [0.0, 0.0])
    assert grad[0, 2] > 0
    positives = fl.asymmetric_loss(np.ones_like(p), logits, clip=0.05, from_logits=True)
    unclipped = fl.asymmetric_loss(np.ones_like(p), logits, clip=0.0, from_logits=True)
    np.testing.assert_array_equal(positives.numpy(), unclipped.numpy())


@pytest.mark.parametrize(
    ("gamma_pos", "gamma_neg", "clip"), [(0.0, 4.0, 0.05), (1.0, 0.5, 0.0), (0.3, 2.5, 0.2)]
)
@pytest.mark.parametrize("from_logits", [False, True])
def test_gradient_matches_float64_finite_differences(gamma_pos, gamma_neg, clip, from_logits):
    y_true, y_pred = _inputs((5, 3), from_logits, seed=3, soft=True)
    kwargs = dict(gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip, from_logits=from_logits)
    _, grad = loss_and_gradient(fl.asymmetric_loss, y_true, y_pred, tf.float64, **kwargs)
    numeric = finite_difference_gradient(
        lambda x: ref.asymmetric(y_true, x, **kwargs)[0].sum(), y_pred, h=1e-7
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("from_logits", [False, True])
def test_detach_focusing_differentiates_only_the_log_terms(from_logits):
    # The authors' disable_torch_grad_focal_loss=True: the focusing weights are constants.
    y_true, y_pred = _inputs((5, 3), from_logits, seed=4)
    kwargs = dict(gamma_pos=1.0, gamma_neg=3.0, clip=0.1, from_logits=from_logits)
    loss, grad = loss_and_gradient(
        fl.asymmetric_loss, y_true, y_pred, tf.float64, detach_focusing=True, **kwargs
    )
    expected, weights = ref.asymmetric(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(loss, expected.sum(), rtol=1e-10)
    numeric = finite_difference_gradient(
        lambda x: ref.asymmetric(y_true, x, weights=weights, **kwargs)[0].sum(), y_pred, h=1e-7
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    _, full = loss_and_gradient(fl.asymmetric_loss, y_true, y_pred, tf.float64, **kwargs)
    assert np.abs(full - grad).max() > 1e-3  # the two gradients differ


@pytest.mark.parametrize("clip", [0.0, 0.05, 1.0])
def test_probabilities_of_exactly_zero_and_one_have_finite_gradient(clip):
    y_true = np.array([[0.0, 1.0, 0.0, 1.0]])
    probabilities = np.array([[0.0, 1.0, 1.0, 0.0]])
    loss, grad = loss_and_gradient(
        fl.asymmetric_loss, y_true, probabilities, gamma_pos=0.5, gamma_neg=0.5, clip=clip
    )
    assert np.isfinite(loss)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(gamma_neg=-1.0), r"gamma_neg.*>= 0.*-1\.0"),
        (dict(gamma_pos=float("nan")), r"gamma_pos.*nan"),
        (dict(clip=1.5), r"clip.*\[0, 1\].*1\.5"),
        (dict(clip=None), r"clip.*None"),
        (dict(detach_focusing="yes"), r"detach_focusing.*True or False.*'yes'"),
        (dict(axis=2), r"axis.*\[-2, 2\).*2"),
    ],
)
def test_bad_arguments_raise_naming_argument_value_and_expectation(kwargs, match):
    y = np.eye(3)[[0, 1, 2, 0]]
    with pytest.raises(ValueError, match=match):
        fl.asymmetric_loss(y, y, **kwargs)
