"""The focal functions of focal_dist.losses against Keras 3, its documentation and NumPy."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from focal_dist import losses as fl
from tests.losses import numpy_reference as ref

RTOL = 1e-5


def _binary_inputs(shape, from_logits, seed):
    rng = np.random.default_rng(seed)
    y_true = (rng.random(shape) < 0.4).astype(np.float64)
    # Away from saturation: Keras clips probabilities at 1e-7 and so do we.
    y_pred = rng.uniform(-4, 4, shape) if from_logits else rng.uniform(0.02, 0.98, shape)
    return y_true, y_pred


BINARY_GRID = list(
    itertools.product(
        [0.0, 0.5, 2.0, 5.0],  # gamma
        [0.25, 0.8],  # alpha
        [False, True],  # apply_class_balancing
        [False, True],  # from_logits
        [0.0, 0.1],  # label_smoothing
        [((9,), -1), ((6, 3), -1), ((6, 3), 0), ((2, 4, 3), -1), ((2, 4, 3), 1)],
    )
)


@pytest.mark.parametrize(
    ("gamma", "alpha", "balance", "from_logits", "smoothing", "shape_axis"), BINARY_GRID
)
def test_binary_matches_keras_over_the_argument_grid(
    gamma, alpha, balance, from_logits, smoothing, shape_axis
):
    shape, axis = shape_axis
    y_true, y_pred = _binary_inputs(shape, from_logits, seed=len(shape) + axis + 7)
    kwargs = dict(
        gamma=gamma,
        alpha=alpha,
        apply_class_balancing=balance,
        from_logits=from_logits,
        label_smoothing=smoothing,
        axis=axis,
    )
    # float64 on both sides: Keras's own float32 1 - sigmoid(x) loses digits for |x| > 3.
    ours = fl.binary_focal_crossentropy(y_true, y_pred, **kwargs)
    theirs = keras.losses.binary_focal_crossentropy(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(ours.numpy(), np.asarray(theirs), rtol=RTOL, atol=0)
    # And in float32, the dtype people train in.
    ours32 = fl.binary_focal_crossentropy(y_true.astype("f4"), y_pred.astype("f4"), **kwargs)
    assert ours32.dtype == tf.float32
    np.testing.assert_allclose(ours32.numpy(), np.asarray(theirs), rtol=RTOL, atol=1e-7)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 3.0])
@pytest.mark.parametrize("balance", [False, True])
def test_binary_class_with_sample_weight_matches_keras_class(reduction, gamma, balance):
    y_true, y_pred = _binary_inputs((8, 5), True, seed=3)
    sample_weight = np.random.default_rng(4).uniform(0, 2, 8)
    kwargs = dict(gamma=gamma, apply_class_balancing=balance, from_logits=True)
    ours = fl.BinaryFocalCrossentropy(reduction=reduction, **kwargs)
    theirs = keras.losses.BinaryFocalCrossentropy(reduction=reduction, **kwargs)
    np.testing.assert_allclose(
        ours(y_true, y_pred, sample_weight=sample_weight).numpy(),
        np.asarray(theirs(y_true, y_pred, sample_weight=sample_weight)),
        rtol=RTOL,
    )


KERAS_DOC_EXAMPLE_1 = (np.array([0, 1, 0, 0]), np.array([-18.6, 0.51, 2.94, -12.8]))
KERAS_DOC_EXAMPLE_2 = (np.array([[0, 1], [0, 0]]), np.array([[-18.6, 0.51], [2.94, -12.8]]))


@pytest.mark.parametrize(
    ("example", "kwargs", "call_kwargs", "expected"),
    [
        (KERAS_DOC_EXAMPLE_1, dict(gamma=2), {}, 0.691),
        (KERAS_DOC_EXAMPLE_1, dict(gamma=2, apply_class_balancing=True), {}, 0.51),
        (KERAS_DOC_EXAMPLE_2, dict(gamma=3), {}, 0.647),
        (KERAS_DOC_EXAMPLE_2, dict(gamma=3, apply_class_balancing=True), {}, 0.482),
        (KERAS_DOC_EXAMPLE_2, dict(gamma=3), dict(sample_weight=[0.8, 0.2]), 0.133),
        (
            KERAS_DOC_EXAMPLE_2,
            dict(gamma=3, apply_class_balancing=True),
            dict(sample_weight=[0.8, 0.2]),
            0.097,
        ),
        (KERAS_DOC_EXAMPLE_2, dict(gamma=4, reduction="sum"), {}, 1.222),
        (
            KERAS_DOC_EXAMPLE_2,
            dict(gamma=4, apply_class_balancing=True, reduction="sum"),
            {},
            0.914,
        ),
        (KERAS_DOC_EXAMPLE_2, dict(gamma=5, reduction="none"), {}, [0.0017, 1.1561]),
        (
            KERAS_DOC_EXAMPLE_2,
            dict(gamma=5, apply_class_balancing=True, reduction="none"),
            {},
            [0.0004, 0.8670],
        ),
    ],
)
def test_binary_reproduces_the_values_printed_in_keras_documentation(
    example, kwargs, call_kwargs, expected
):
    kwargs = {"reduction": "sum_over_batch_size", **kwargs}
    loss = fl.BinaryFocalCrossentropy(from_logits=True, **kwargs)
    value = loss(*example, **call_kwargs).numpy()
    # The documentation prints 3 or 4 decimals.
    decimals = 4 if isinstance(expected, list) else 3
    np.testing.assert_allclose(np.round(value, decimals), expected, atol=1.5 * 10**-decimals)


@pytest.mark.parametrize("from_logits", [False, True])
def test_gamma_zero_equals_binary_crossentropy(from_logits):
    y_true, y_pred = _binary_inputs((16, 4), from_logits, seed=5)
    ours = fl.binary_focal_crossentropy(y_true, y_pred, gamma=0.0, from_logits=from_logits)
    bce = keras.losses.binary_crossentropy(y_true, y_pred, from_logits=from_logits)
    np.testing.assert_allclose(ours.numpy(), np.asarray(bce), rtol=RTOL)


@pytest.mark.parametrize(
    "class_weight",
    [{0: 0.3, 1: 4.0}, [0.5, 2.0], np.array([[0.1, 0.5, 1.0], [2.0, 3.0, 0.0]])],
    ids=["dict", "pair", "per_output"],
)
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_binary_class_weight_matches_numpy_float64(class_weight, from_logits, smoothing):
    y_true, y_pred = _binary_inputs((10, 3), from_logits, seed=6)
    pair = [class_weight[0], class_weight[1]] if isinstance(class_weight, dict) else class_weight
    expected = ref.binary_focal(
        y_true,
        y_pred,
        gamma=2.0,
        from_logits=from_logits,
        label_smoothing=smoothing,
        class_weight=pair,
        balance=True,
        alpha=0.3,
    )
    ours = fl.binary_focal_crossentropy(
        y_true,
        y_pred,
        gamma=2.0,
        from_logits=from_logits,
        label_smoothing=smoothing,
        class_weight=class_weight,
        apply_class_balancing=True,
        alpha=0.3,
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)


def test_binary_per_output_class_weight_along_a_non_last_axis():
    y_true, y_pred = _binary_inputs((3, 4, 2), True, seed=8)
    weights = np.array([[1.0, 2.0, 0.5, 0.0], [3.0, 0.25, 1.0, 2.0]])
    ours = fl.binary_focal_crossentropy(
        y_true, y_pred, from_logits=True, axis=1, class_weight=weights
    )
    expected = ref.binary_focal(
        y_true, y_pred, gamma=2.0, from_logits=True, axis=1, class_weight=weights
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)


def _categorical_inputs(shape, from_logits, seed, axis=-1):
    rng = np.random.default_rng(seed)
    num_classes = shape[axis]
    ids = rng.integers(0, num_classes, [s for i, s in enumerate(shape) if i != axis % len(shape)])
    y_true = np.moveaxis(np.eye(num_classes)[ids], -1, axis)
    y_pred = rng.uniform(-3, 3, shape) if from_logits else rng.uniform(0.05, 1.0, shape)
    return y_true, y_pred


@pytest.mark.parametrize(
    ("gamma", "alpha", "from_logits", "smoothing", "shape"),
    list(
        itertools.product(
            [0.0, 0.5, 2.0, 4.0], [0.25, 1.0], [False, True], [0.0, 0.1], [(7, 4), (2, 3, 5)]
        )
    ),
)
def test_categorical_matches_keras_over_the_argument_grid(
    gamma, alpha, from_logits, smoothing, shape
):
    y_true, y_pred = _categorical_inputs(shape, from_logits, seed=11)
    kwargs = dict(gamma=gamma, alpha=alpha, from_logits=from_logits, label_smoothing=smoothing)
    ours = fl.categorical_focal_crossentropy(y_true, y_pred, **kwargs)
    theirs = keras.losses.categorical_focal_crossentropy(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(ours.numpy(), np.asarray(theirs), rtol=RTOL)
    ours32 = fl.categorical_focal_crossentropy(y_true.astype("f4"), y_pred.astype("f4"), **kwargs)
    np.testing.assert_allclose(ours32.numpy(), np.asarray(theirs), rtol=RTOL)


@pytest.mark.parametrize("from_logits", [False, True])
def test_categorical_non_last_axis_and_per_class_alpha_match_numpy(from_logits):
    y_true, y_pred = _categorical_inputs((3, 5, 2), from_logits, seed=12, axis=1)
    alpha = [0.1, 0.2, 0.3, 0.9, 1.0]
    weights = {0: 1.0, 1: 2.0, 2: 0.5, 3: 0.0, 4: 3.0}
    ours = fl.categorical_focal_crossentropy(
        y_true,
        y_pred,
        gamma=1.5,
        alpha=alpha,
        from_logits=from_logits,
        axis=1,
        class_weight=weights,
    )
    expected = ref.categorical_focal(
        y_true,
        y_pred,
        gamma=1.5,
        alpha=alpha,
        from_logits=from_logits,
        axis=1,
        class_weight=[weights[c] for c in range(5)],
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("from_logits", [False, True])
def test_label_smoothing_spreads_over_the_class_axis_not_the_last_axis(from_logits):
    # 5 classes on axis 1, 2 entries on the last axis: t = y (1 - s) + s / 5.
    y_true, y_pred = _categorical_inputs((3, 5, 2), from_logits, seed=16, axis=1)
    kwargs = dict(gamma=2.0, alpha=0.5, from_logits=from_logits, label_smoothing=0.1, axis=1)
    expected = ref.categorical_focal(y_true, y_pred, **kwargs)
    ours = fl.categorical_focal_crossentropy(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)
    per_example = fl.CategoricalFocalCrossentropy(reduction="none", **kwargs)(y_true, y_pred)
    np.testing.assert_allclose(per_example.numpy(), expected, rtol=1e-5)
    # The same numbers as with the class axis last, where both readings agree.
    moved = fl.categorical_focal_crossentropy(
        np.moveaxis(y_true, 1, -1), np.moveaxis(y_pred, 1, -1), **{**kwargs, "axis": -1}
    )
    np.testing.assert_allclose(moved.numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("ignore_class", [None, -1, 2])
def test_sparse_matches_numpy_loop_with_class_weight_and_ignore_class(from_logits, ignore_class):
    rng = np.random.default_rng(13)
    labels = rng.integers(0, 4, (6, 5))
    if ignore_class == -1:
        labels[rng.random(labels.shape) < 0.3] = -1
    y_pred = rng.uniform(-3, 3, (6, 5, 4)) if from_logits else rng.uniform(0.05, 1, (6, 5, 4))
    alpha = np.array([0.2, 0.4, 0.6, 0.8])
    weights = [1.0, 0.5, 2.0, 4.0]
    ours = fl.sparse_categorical_focal_crossentropy(
        labels,
        y_pred,
        gamma=2.0,
        alpha=alpha,
        from_logits=from_logits,
        class_weight=weights,
        ignore_class=ignore_class,
    )
    expected = ref.sparse_focal(
        labels,
        y_pred,
        gamma=2.0,
        alpha=alpha,
        from_logits=from_logits,
        class_weight=weights,
        ignore_class=ignore_class,
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)
    if ignore_class is not None:
        assert np.all(ours.numpy()[labels == ignore_class] == 0)


def test_sparse_equals_categorical_on_one_hot_labels_and_keras_sparse_class():
    rng = np.random.default_rng(14)
    labels = rng.integers(0, 6, 20)
    logits = rng.normal(size=(20, 6))
    sparse = fl.sparse_categorical_focal_crossentropy(labels, logits, from_logits=True)
    dense = fl.categorical_focal_crossentropy(np.eye(6)[labels], logits, from_logits=True)
    np.testing.assert_allclose(sparse.numpy(), dense.numpy(), rtol=1e-12)
    # [B, 1] labels, as Keras passes them, give the same.
    keras_shaped = fl.SparseCategoricalFocalCrossentropy(from_logits=True, reduction="none")(
        labels[:, None], logits
    )
    np.testing.assert_allclose(keras_shaped.numpy(), dense.numpy(), rtol=1e-6)


def test_sparse_ignore_class_examples_are_not_counted_by_the_mean():
    labels = np.array([0, 255, 1, 255])
    logits = np.random.default_rng(15).normal(size=(4, 3)).astype("f4")
    loss = fl.SparseCategoricalFocalCrossentropy(
        from_logits=True, ignore_class=255, reduction="none"
    )
    per_example = loss(labels, logits)
    valid = per_example.numpy()[[0, 2]]
    # Keras's own reduction (the default) and compute_global_loss both average over the
    # 2 valid ones.
    keras_mean = fl.SparseCategoricalFocalCrossentropy(from_logits=True, ignore_class=255)(
        labels, logits
    )
    np.testing.assert_allclose(keras_mean.numpy(), valid.mean(), rtol=1e-5)
    np.testing.assert_allclose(fl.compute_global_loss(per_example).numpy(), valid.mean(), rtol=1e-6)


# --- numerics beyond Keras ------------------------------------------------------------

SATURATED = [100.0, -100.0, 1e4, -1e4, 0.0, 30.0]


def _loss_and_gradient(fn, y_true, logits, **kwargs):
    logits = tf.constant(logits, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = tf.reduce_sum(fn(y_true, logits, **kwargs))
    return loss.numpy(), tape.gradient(loss, logits).numpy()


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0])
def test_binary_saturated_logits_have_finite_loss_and_gradient_where_keras_gives_nan(gamma):
    logits = np.array([SATURATED * 2], np.float32)
    y_true = np.array([[1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1]], np.float32)
    loss, grad = _loss_and_gradient(
        fl.binary_focal_crossentropy, y_true, logits, gamma=gamma, from_logits=True
    )
    assert np.isfinite(loss)
    assert np.all(np.isfinite(grad))
    # The float64 reference of the gradient for a correct, saturated prediction is ~0,
    # and for a wrong one it is (p - t) / n up to the focal factor -> 1.
    expected = ref.binary_focal(y_true, logits, gamma=gamma, from_logits=True).sum()
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    if gamma in (0.0, 0.5):
        # What this project exists to fix: Keras's gradient here is NaN.
        _, keras_grad = _loss_and_gradient(
            keras.losses.binary_focal_crossentropy,
            y_true,
            logits,
            gamma=gamma,
            from_logits=True,
        )
        assert np.isnan(keras_grad).any()


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_categorical_saturated_logits_have_finite_loss_and_gradient(gamma, smoothing):
    logits = np.array([[100, -100, 0], [1e4, -1e4, 0], [-1e4, 1e4, 1e4], [5, 5, 5]], np.float32)
    y_true = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    loss, grad = _loss_and_gradient(
        fl.categorical_focal_crossentropy,
        y_true,
        logits,
        gamma=gamma,
        from_logits=True,
        label_smoothing=smoothing,
    )
    assert np.isfinite(loss)
    assert np.all(np.isfinite(grad))
    expected = ref.categorical_focal(
        y_true, logits, gamma=gamma, from_logits=True, label_smoothing=smoothing
    ).sum()
    np.testing.assert_allclose(loss, expected, rtol=1e-6)


def test_sparse_saturated_logits_have_finite_gradient_for_gamma_below_one():
    logits = np.array([[1e4, -1e4, 0.0], [-100.0, 100.0, 0.0]], np.float32)
    loss, grad = _loss_and_gradient(
        fl.sparse_categorical_focal_crossentropy,
        np.array([0, 1]),
        logits,
        gamma=0.5,
        from_logits=True,
    )
    assert np.isfinite(loss)
    assert np.all(np.isfinite(grad))


def _finite_difference_gradient(fn, x, h=1e-6):
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        numeric[index] = (fn(up) - fn(down)) / (2 * h)
    return numeric


def _float64_gradient(fn, y_true, logits, **kwargs):
    logits = tf.constant(logits, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = tf.reduce_sum(fn(y_true, logits, **kwargs))
    return tape.gradient(loss, logits).numpy()


@pytest.mark.parametrize("gamma", [0.0, 0.7, 1.0, 2.0, 3.5])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_binary_gradient_matches_float64_finite_differences(gamma, smoothing):
    rng = np.random.default_rng(16)
    y_true = (rng.random((4, 3)) < 0.5).astype(np.float64)
    logits = rng.uniform(-6, 6, (4, 3))
    kwargs = dict(gamma=gamma, from_logits=True, label_smoothing=smoothing)
    grad = _float64_gradient(fl.binary_focal_crossentropy, y_true, logits, **kwargs)
    numeric = _finite_difference_gradient(
        lambda x: ref.binary_focal(y_true, x, **kwargs).sum(), logits
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0, 2.0, 2.5])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_categorical_gradient_matches_float64_finite_differences(gamma, smoothing):
    y_true, logits = _categorical_inputs((5, 4), True, seed=20)
    logits[0] = [30.0, -30.0, 0.0, 1.0]  # a saturated row
    kwargs = dict(
        gamma=gamma,
        alpha=[0.2, 0.4, 0.6, 0.8],
        from_logits=True,
        label_smoothing=smoothing,
        class_weight=[1.0, 2.0, 0.5, 1.5],
    )
    grad = _float64_gradient(fl.categorical_focal_crossentropy, y_true, logits, **kwargs)
    numeric = _finite_difference_gradient(
        lambda x: ref.categorical_focal(y_true, x, **kwargs).sum(), logits
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


finite_logits = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 4), st.integers(2, 5)),
    elements=st.floats(-1e4, 1e4, width=32),
)


@settings(max_examples=60, deadline=None)
@given(
    logits=finite_logits,
    gamma=st.floats(0.0, 5.0),
    smoothing=st.sampled_from([0.0, 0.1, 1.0]),
    data=st.data(),
)
def test_property_binary_loss_and_gradient_are_finite_and_non_negative(
    logits, gamma, smoothing, data
):
    y_true = data.draw(hnp.arrays(np.float32, logits.shape, elements=st.sampled_from([0.0, 1.0])))
    for fn_kwargs in (dict(from_logits=True), dict(from_logits=False)):
        y_pred = logits if fn_kwargs["from_logits"] else np.exp(-np.logaddexp(0, -logits / 100))
        loss, grad = _loss_and_gradient(
            fl.binary_focal_crossentropy,
            y_true,
            y_pred,
            gamma=gamma,
            label_smoothing=smoothing,
            **fn_kwargs,
        )
        assert np.isfinite(loss)
        assert loss >= 0
        assert np.all(np.isfinite(grad))


@settings(max_examples=60, deadline=None)
@given(logits=finite_logits, gamma=st.floats(0.0, 5.0), data=st.data())
def test_property_categorical_loss_and_gradient_are_finite_and_non_negative(logits, gamma, data):
    labels = data.draw(
        hnp.arrays(np.int64, logits.shape[:1], elements=st.integers(0, logits.shape[1] - 1))
    )
    y_true = np.eye(logits.shape[1], dtype=np.float32)[labels]
    loss, grad = _loss_and_gradient(
        fl.categorical_focal_crossentropy, y_true, logits, gamma=gamma, from_logits=True
    )
    assert np.isfinite(loss)
    assert loss >= 0
    assert np.all(np.isfinite(grad))
    sparse_loss, sparse_grad = _loss_and_gradient(
        fl.sparse_categorical_focal_crossentropy, labels, logits, gamma=gamma, from_logits=True
    )
    np.testing.assert_allclose(sparse_loss, loss, rtol=1e-6)
    assert np.all(np.isfinite(sparse_grad))


# --- dtypes, graph and XLA ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float32, tf.float64])
def test_any_float_dtype_is_computed_in_at_least_float32(dtype):
    y_true, y_pred = _binary_inputs((5, 4), True, seed=17)
    y_pred_cast = tf.cast(y_pred, dtype)
    loss = fl.binary_focal_crossentropy(y_true, y_pred_cast, from_logits=True)
    assert loss.dtype == (tf.float64 if dtype == tf.float64 else tf.float32)
    # Same value as float64 evaluated on the rounded inputs.
    expected = ref.binary_focal(
        y_true, tf.cast(y_pred_cast, tf.float64).numpy(), gamma=2.0, from_logits=True
    )
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5 if dtype != tf.float64 else 1e-12)
    sparse = fl.sparse_categorical_focal_crossentropy(
        [0, 1, 2, 3, 0], y_pred_cast, from_logits=True
    )
    assert sparse.dtype == loss.dtype


@pytest.mark.parametrize("jit_compile", [False, True])
def test_graph_and_xla_give_the_eager_values_and_gradients(jit_compile):
    y_true, logits = _binary_inputs((32, 6), True, seed=18)
    labels = np.random.default_rng(19).integers(0, 6, 32)
    logits = logits.astype(np.float32)

    def losses(x):
        return (
            fl.binary_focal_crossentropy(
                y_true, x, gamma=0.5, from_logits=True, label_smoothing=0.1
            ),
            fl.categorical_focal_crossentropy(np.eye(6)[labels], x, from_logits=True),
            fl.sparse_categorical_focal_crossentropy(labels, x, from_logits=True),
        )

    def with_gradients(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            values = losses(x)
            total = tf.add_n([tf.reduce_sum(v) for v in values])
        return values, tape.gradient(total, x)

    eager_values, eager_grad = with_gradients(tf.constant(logits))
    compiled = tf.function(with_gradients, jit_compile=jit_compile)
    values, grad = compiled(tf.constant(logits))
    for a, b in zip(values, eager_values, strict=False):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), eager_grad.numpy(), rtol=1e-5, atol=1e-7)


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "kwargs", "match"),
    [
        (fl.binary_focal_crossentropy, dict(gamma=-1.0), r"gamma.*>= 0.*-1\.0"),
        (fl.categorical_focal_crossentropy, dict(gamma=float("nan")), r"gamma.*nan"),
        (fl.binary_focal_crossentropy, dict(alpha=1.5), r"alpha.*\[0, 1\].*1\.5"),
        (fl.binary_focal_crossentropy, dict(label_smoothing=-0.1), r"label_smoothing.*-0\.1"),
        (fl.categorical_focal_crossentropy, dict(label_smoothing=2.0), r"label_smoothing.*2\.0"),
        (fl.categorical_focal_crossentropy, dict(alpha=[0.1, 0.2]), r"alpha has 2 entries.*3"),
        (fl.categorical_focal_crossentropy, dict(alpha=[0.1, 0.2, 1.2]), r"alpha entries"),
        (fl.binary_focal_crossentropy, dict(class_weight=[1.0, 2.0, 3.0]), r"class_weight.*\(3,\)"),
        (fl.binary_focal_crossentropy, dict(class_weight=[1.0, -2.0]), r"class_weight.*>= 0"),
        (fl.binary_focal_crossentropy, dict(class_weight=np.ones((2, 4))), r"\(2, 3\)"),
        (fl.categorical_focal_crossentropy, dict(class_weight=[1.0, 2.0]), r"class_weight.*\(3,\)"),
        (fl.categorical_focal_crossentropy, dict(class_weight={0: 1.0, 1: 1.0}), r"classes \[2\]"),
        (fl.categorical_focal_crossentropy, dict(class_weight={0: 1, 1: 1, 5: 1}), r"\[5\]"),
        (fl.binary_focal_crossentropy, dict(axis=3), r"axis.*\[-2, 2\).*3"),
    ],
)
def test_bad_arguments_raise_value_error_naming_argument_and_value(fn, kwargs, match):
    y = np.eye(3)[[0, 1, 2, 0]]
    with pytest.raises(ValueError, match=match):
        fn(y, y, **kwargs)


def test_mismatched_shapes_raise_naming_both_shapes():
    with pytest.raises(ValueError, match=r"y_true.*\(4, 3\).*y_pred.*\(4, 2\)"):
        fl.binary_focal_crossentropy(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"same shape"):
        fl.categorical_focal_crossentropy(np.zeros((4, 3)), np.zeros((5, 3)))


def test_mismatched_shapes_known_only_at_run_time_raise_invalid_argument():
    fn = tf.function(
        lambda t, p: fl.binary_focal_crossentropy(t, p),
        input_signature=[tf.TensorSpec([None, 3]), tf.TensorSpec([None, 3])],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="same shape"):
        fn(tf.zeros([4, 3]), tf.zeros([5, 3]))


@pytest.mark.parametrize("bad_label", [-1, 3, 7])
def test_sparse_label_outside_the_classes_raises_naming_the_value(bad_label):
    labels = np.array([0, bad_label, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"\[0, 3\)(.|\n)*{bad_label}"):
        fl.sparse_categorical_focal_crossentropy(labels, np.zeros((3, 3)), from_logits=True)
