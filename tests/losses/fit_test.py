"""The Loss classes inside Keras's own model.compile / model.fit, on one and two replicas.

References: Keras's own loss classes with the same arguments, and the same fit on one
device. MirroredStrategy runs on the logical CPUs that tests/conftest.py creates.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from focal_dist import losses as fl

BATCH = 48


def _mirrored(replicas=2):
    return tf.distribute.MirroredStrategy(
        [f"/cpu:{i}" for i in range(replicas)],
        cross_device_ops=tf.distribute.ReductionToOneDevice(),
    )


def _model(input_shape, outputs, initial_weights=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(outputs),
        ]
    )
    if initial_weights is not None:
        model.set_weights(initial_weights)
    return model


def _fit(loss, x, y, *, strategy=None, initial_weights, epochs=1, batch_size=BATCH, **fit_kwargs):
    """SGD steps with compile/fit; returns (weights, history losses)."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = _model(x.shape[1:], initial_weights[-1].shape[0], initial_weights)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
    history = model.fit(
        x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0, **fit_kwargs
    )
    return model.get_weights(), history.history["loss"]


def _binary_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, 5)).astype("f4")
    y = (rng.random((BATCH, 3)) < 0.2).astype("f4")
    return x, y


def _categorical_data(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, 5)).astype("f4")
    y = np.eye(4, dtype="f4")[rng.integers(0, 4, BATCH)]
    return x, y


BINARY_ARGS = dict(
    gamma=2.0, alpha=0.3, apply_class_balancing=True, from_logits=True, label_smoothing=0.1
)
CATEGORICAL_ARGS = dict(gamma=1.5, alpha=0.25, from_logits=True, label_smoothing=0.1)
CASES = {
    "binary": (fl.BinaryFocalCrossentropy, keras.losses.BinaryFocalCrossentropy, BINARY_ARGS),
    "categorical": (
        fl.CategoricalFocalCrossentropy,
        keras.losses.CategoricalFocalCrossentropy,
        CATEGORICAL_ARGS,
    ),
}


def _data(kind):
    return _binary_data() if kind == "binary" else _categorical_data()


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_default_class_in_compile_takes_the_step_of_the_keras_class_with_the_same_args(
    kind, weighted
):
    ours, theirs, kwargs = CASES[kind]
    x, y = _data(kind)
    initial = _model(x.shape[1:], y.shape[1]).get_weights()
    fit_kwargs = {}
    if weighted:
        fit_kwargs["sample_weight"] = np.random.default_rng(2).uniform(0.2, 2.0, BATCH)
    expected, expected_loss = _fit(theirs(**kwargs), x, y, initial_weights=initial, **fit_kwargs)
    weights, loss = _fit(ours(**kwargs), x, y, initial_weights=initial, **fit_kwargs)
    moved = max(np.abs(w - w0).max() for w, w0 in zip(expected, initial, strict=True))
    assert moved > 1e-3  # the step did something
    for got, want in zip(weights, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_mirrored_two_replicas_fit_reports_the_true_loss_and_takes_the_single_device_step(kind):
    ours, _, kwargs = CASES[kind]
    x, y = _data(kind)
    initial = _model(x.shape[1:], y.shape[1]).get_weights()
    # The true loss of the step: the batch mean at the initial weights, from the function.
    function = {"binary": fl.binary_focal_crossentropy, "categorical": None}[kind]
    function = function or fl.categorical_focal_crossentropy
    true_loss = np.mean(function(y, _model(x.shape[1:], y.shape[1], initial)(x), **kwargs))
    single, single_loss = _fit(ours(**kwargs), x, y, initial_weights=initial)
    mirrored, mirrored_loss = _fit(
        ours(**kwargs), x, y, strategy=_mirrored(), initial_weights=initial
    )
    np.testing.assert_allclose(single_loss, [true_loss], rtol=1e-6)
    np.testing.assert_allclose(mirrored_loss, [true_loss], rtol=1e-6)
    for got, want in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


# --- segmentation: replicas that count different numbers of pixels ----------------------

IGNORE = 255
SEG_CLASSES = 3


def _segmentation_data():
    """8 images of 4x4 pixels; the first 4 (replica 0) are mostly void, the last 4 not."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(8, 4, 4, 3)).astype("f4")
    labels = rng.integers(0, SEG_CLASSES, (8, 4, 4))
    void = rng.random((8, 4, 4)) < np.array([0.85] * 4 + [0.05] * 4)[:, None, None]
    labels[void] = IGNORE
    return x, labels


def _segmentation_fit(loss, strategy=None, steps=4):
    x, labels = _segmentation_data()
    initial = _model(x.shape[1:], SEG_CLASSES).get_weights()
    return _fit(
        loss, x, labels, strategy=strategy, initial_weights=initial, epochs=steps, batch_size=8
    )


def test_global_mean_keeps_segmentation_fit_exact_on_two_replicas_where_keras_ignore_class_fails():
    x, labels = _segmentation_data()
    valid = (labels != IGNORE).reshape(2, -1).sum(axis=1)
    assert valid[0] < valid[1] / 3  # the two replicas count very different pixels

    def ours():
        return fl.SparseCategoricalFocalCrossentropy(
            from_logits=True, ignore_class=IGNORE, reduction="global_mean"
        )

    single, single_loss = _segmentation_fit(ours())
    mirrored, mirrored_loss = _segmentation_fit(ours(), _mirrored())
    for got, want in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mirrored_loss, single_loss, rtol=1e-5)

    # Keras's own ignore_class (and our class with Keras's reduction) average each replica's
    # own pixels and divide by the replica count: another loss, other weights.
    def keras_loss():
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE)

    keras_single, _ = _segmentation_fit(keras_loss())
    keras_mirrored, _ = _segmentation_fit(keras_loss(), _mirrored())
    keras_gap = max(np.abs(a - b).max() for a, b in zip(keras_mirrored, keras_single, strict=True))
    ours_gap = max(np.abs(a - b).max() for a, b in zip(mirrored, single, strict=True))
    print(
        f"max |mirrored - single| weight: keras ignore_class {keras_gap:.3g}, "
        f"global_mean {ours_gap:.3g}"
    )
    assert keras_gap > 1e-2
    assert keras_gap > 1000 * ours_gap


def test_global_mean_on_one_device_is_keras_mean_over_valid_pixels():
    x, labels = _segmentation_data()
    logits = tf.constant(np.random.default_rng(6).normal(size=(8, 4, 4, SEG_CLASSES)), tf.float32)
    kwargs = dict(from_logits=True, ignore_class=IGNORE)
    ours = fl.SparseCategoricalFocalCrossentropy(reduction="global_mean", **kwargs)
    keras_reduction = fl.SparseCategoricalFocalCrossentropy(**kwargs)
    per_pixel = fl.sparse_categorical_focal_crossentropy(labels, logits, **kwargs).numpy()
    expected = per_pixel[labels != IGNORE].mean()
    np.testing.assert_allclose(ours(labels, logits).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(keras_reduction(labels, logits).numpy(), expected, rtol=1e-6)


def test_global_mean_keeps_fit_exact_when_the_last_batch_splits_unevenly_over_replicas():
    # 48 + 41 examples in batches of 48: the last one splits 21 / 20 over the replicas.
    x = np.concatenate([_binary_data(0)[0], _binary_data(1)[0][:41]])
    y = np.concatenate([_binary_data(0)[1], _binary_data(1)[1][:41]])
    initial = _model(x.shape[1:], y.shape[1]).get_weights()

    def fit(reduction, strategy=None):
        loss = fl.BinaryFocalCrossentropy(from_logits=True, reduction=reduction)
        return _fit(loss, x, y, strategy=strategy, initial_weights=initial, epochs=2)

    single, _ = fit("global_mean")
    mirrored, _ = fit("global_mean", _mirrored())
    for got, want in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    keras_mirrored, _ = fit("sum_over_batch_size", _mirrored())
    gap = max(np.abs(a - b).max() for a, b in zip(keras_mirrored, single, strict=True))
    assert gap > 1e-5  # Keras's reduction: (S_0 / 21 + S_1 / 20) / 2, not S / 41


@pytest.mark.parametrize("kind", ["asymmetric", "logit_adjusted"])
def test_global_mean_keeps_fit_exact_for_the_new_losses_on_two_replicas(kind):
    # Logit adjustment with ignored labels: replica 0 holds far fewer valid examples.
    rng = np.random.default_rng(12)
    x = rng.normal(size=(BATCH, 5)).astype("f4")
    if kind == "asymmetric":
        y = (rng.random((BATCH, 3)) < 0.2).astype("f4")

        def loss():
            return fl.AsymmetricLoss(from_logits=True, gamma_pos=1.0, reduction="global_mean")
    else:
        y = rng.integers(0, 3, BATCH)
        y[: BATCH // 2][rng.random(BATCH // 2) < 0.8] = -1

        def loss():
            return fl.LogitAdjustedCrossentropy(
                log_prior=[-0.2, -2.0, -4.0], ignore_class=-1, reduction="global_mean"
            )

    initial = _model(x.shape[1:], 3).get_weights()
    single, single_loss = _fit(loss(), x, y, initial_weights=initial, epochs=3)
    mirrored, mirrored_loss = _fit(
        loss(), x, y, strategy=_mirrored(), initial_weights=initial, epochs=3
    )
    for got, want in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mirrored_loss, single_loss, rtol=1e-5)
