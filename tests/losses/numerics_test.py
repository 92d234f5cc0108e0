"""Every loss, every allowed hyper-parameter: finite loss and gradient for logits up to
±1e4, half precision computed in float32, XLA equal to eager (NumPy float64 the reference)."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from focal_dist import losses as fl
from tests.losses import numpy_reference as ref
from tests.losses.gradient_check import loss_and_gradient

# Each row mixes saturated and moderate logits.
LOGITS = np.array(
    [
        [1e4, -1e4, 0.0, 30.0, -30.0, 2.0],
        [-1e4, 1e4, 1e4, -100.0, 100.0, 0.5],
        [100.0, -100.0, 0.0, 1e4, -2.0, -1e4],
        [5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
    ],
    np.float32,
)
MULTI_LABEL = np.array(
    [[1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1], [1, 1, 0, 0, 1, 1], [0, 0, 0, 1, 0, 0]], np.float32
)
CLASS_IDS = np.array([0, 1, 2, 4])
ONE_HOT = np.eye(6, dtype=np.float32)[CLASS_IDS]
LOG_PRIOR = np.log(np.array([0.5, 0.25, 0.15, 0.06, 0.03, 0.01]))
RATES = np.array([0.5, 0.2, 0.1, 0.05, 0.01, 0.001])


def _focal_settings(extra):
    for gamma, schedule, epsilon, smoothing in itertools.product(
        [0.0, 0.25, 2.0, 3.7], [None, "flsd53"], [-1.0, 0.0, 3.0], [0.0, 0.1]
    ):
        yield dict(gamma=gamma, gamma_schedule=schedule, poly_epsilon=epsilon, **extra(smoothing))


BINARY = [
    ("binary", fl.binary_focal_crossentropy, ref.binary_focal, MULTI_LABEL, kwargs)
    for kwargs in _focal_settings(
        lambda s: dict(
            label_smoothing=s, alpha=np.linspace(0.1, 0.9, 6), apply_class_balancing=True
        )
    )
]
CATEGORICAL = [
    ("categorical", fl.categorical_focal_crossentropy, ref.categorical_focal, ONE_HOT, kwargs)
    for kwargs in _focal_settings(lambda s: dict(label_smoothing=s, alpha=np.full(6, 0.5)))
]
SPARSE = [
    # The log-space dense reference: ref.sparse_focal's loop takes log(softmax), inf here.
    (
        "sparse",
        fl.sparse_categorical_focal_crossentropy,
        lambda ids, x, **k: ref.categorical_focal(np.eye(6)[ids], x, **k),
        CLASS_IDS,
        kwargs,
    )
    for kwargs in _focal_settings(lambda s: dict(alpha=1.0 - s))
]
ASYMMETRIC = [
    (
        "asymmetric",
        fl.asymmetric_loss,
        lambda y, x, **k: ref.asymmetric(y, x, **k)[0],
        MULTI_LABEL,
        dict(gamma_pos=gp, gamma_neg=gn, clip=clip, detach_focusing=detach),
    )
    for gp, gn, clip, detach in itertools.product(
        [0.0, 0.5, 1.0], [0.0, 0.5, 4.0], [0.0, 1e-30, 0.05, 1.0], [False, True]
    )
]
LOGIT_ADJUSTED = [
    (
        "logit_adjusted",
        fl.logit_adjusted_crossentropy,
        ref.logit_adjusted,
        CLASS_IDS,
        dict(log_prior=LOG_PRIOR, tau=tau),
    )
    for tau in [0.0, 1.0, 3.0]
] + [
    (
        "logit_adjusted_binary",
        fl.logit_adjusted_binary_crossentropy,
        ref.logit_adjusted_binary,
        MULTI_LABEL,
        dict(positive_rate=RATES, tau=tau),
    )
    for tau in [0.0, 1.0, 3.0]
]
ALL = BINARY + CATEGORICAL + SPARSE + ASYMMETRIC + LOGIT_ADJUSTED
FROM_LOGITS = {fl.logit_adjusted_crossentropy, fl.logit_adjusted_binary_crossentropy}


def _call_kwargs(fn, kwargs):
    return kwargs if fn in FROM_LOGITS else {"from_logits": True, **kwargs}


def _reference_kwargs(fn, kwargs):
    kwargs = dict(_call_kwargs(fn, kwargs))
    if fn is fl.binary_focal_crossentropy:
        kwargs["balance"] = kwargs.pop("apply_class_balancing")
    if fn is fl.categorical_focal_crossentropy or fn is fl.sparse_categorical_focal_crossentropy:
        kwargs.pop(
            "label_smoothing", None
        ) if fn is fl.sparse_categorical_focal_crossentropy else None
    kwargs.pop("detach_focusing", None)
    return kwargs


def _id(case):
    name, _, _, _, kwargs = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kwargs.items() if np.ndim(v) == 0)


@pytest.mark.parametrize("case", ALL, ids=[_id(c) for c in ALL])
def test_loss_and_gradient_are_finite_for_logits_up_to_1e4_and_the_loss_is_float64s(case):
    _, fn, reference, y_true, kwargs = case
    loss, grad = loss_and_gradient(fn, y_true, LOGITS, **_call_kwargs(fn, kwargs))
    assert np.isfinite(loss)
    assert np.all(np.isfinite(grad))
    per_example = fn(y_true, LOGITS, **_call_kwargs(fn, kwargs)).numpy()
    assert np.all(per_example >= 0)
    expected = reference(y_true, LOGITS.astype(np.float64), **_reference_kwargs(fn, kwargs))
    np.testing.assert_allclose(per_example, expected, rtol=1e-5, atol=1e-6)


ONE_EACH = [BINARY[-1], CATEGORICAL[-1], SPARSE[-1], ASYMMETRIC[-3], *LOGIT_ADJUSTED[2::3]]


@pytest.mark.parametrize("case", ONE_EACH, ids=[_id(c) for c in ONE_EACH])
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float32, tf.float64])
def test_half_precision_is_computed_in_float32(case, dtype):
    _, fn, reference, y_true, kwargs = case
    logits = tf.cast(np.random.default_rng(1).normal(scale=3.0, size=(4, 6)), dtype)
    loss = fn(y_true, logits, **_call_kwargs(fn, kwargs))
    assert loss.dtype == (tf.float64 if dtype == tf.float64 else tf.float32)
    rounded = tf.cast(logits, tf.float64).numpy()
    expected = reference(y_true, rounded, **_reference_kwargs(fn, kwargs))
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5 if dtype != tf.float64 else 1e-12)


@pytest.mark.parametrize("case", ONE_EACH, ids=[_id(c) for c in ONE_EACH])
def test_xla_gives_the_eager_values_and_gradients(case):
    _, fn, _, y_true, kwargs = case
    logits = tf.constant(np.random.default_rng(2).normal(scale=3.0, size=(32, 6)), tf.float32)
    y_true = np.concatenate([y_true] * 8)

    def with_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = fn(y_true, x, **_call_kwargs(fn, kwargs))
            total = tf.reduce_sum(loss)
        return loss, tape.gradient(total, x)

    eager_loss, eager_grad = with_gradient(logits)
    xla_loss, xla_grad = tf.function(with_gradient, jit_compile=True)(logits)
    np.testing.assert_allclose(xla_loss.numpy(), eager_loss.numpy(), rtol=1e-5)
    np.testing.assert_allclose(xla_grad.numpy(), eager_grad.numpy(), rtol=1e-5, atol=1e-7)


finite_logits = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 4), st.integers(2, 5)),
    elements=st.floats(-1e4, 1e4, width=32),
)


@settings(max_examples=60, deadline=None)
@given(
    logits=finite_logits,
    gamma=st.floats(0.0, 5.0),
    gamma_schedule=st.sampled_from([None, "flsd53"]),
    poly_epsilon=st.floats(-1.0, 5.0),
    gamma_neg=st.floats(0.0, 5.0),
    clip=st.floats(0.0, 1.0),
    data=st.data(),
)
def test_property_new_settings_give_finite_non_negative_loss_and_finite_gradient(
    logits, gamma, gamma_schedule, poly_epsilon, gamma_neg, clip, data
):
    y_true = data.draw(hnp.arrays(np.float32, logits.shape, elements=st.sampled_from([0.0, 1.0])))
    ids = np.argmax(y_true, axis=-1)
    focusing = dict(gamma=gamma, gamma_schedule=gamma_schedule, poly_epsilon=poly_epsilon)
    calls = [
        (fl.binary_focal_crossentropy, y_true, focusing),
        (fl.sparse_categorical_focal_crossentropy, ids, focusing),
        (fl.asymmetric_loss, y_true, dict(gamma_pos=gamma / 5, gamma_neg=gamma_neg, clip=clip)),
    ]
    for fn, labels, kwargs in calls:
        loss, grad = loss_and_gradient(fn, labels, logits, from_logits=True, **kwargs)
        assert np.isfinite(loss)
        assert loss >= 0
        assert np.all(np.isfinite(grad))
