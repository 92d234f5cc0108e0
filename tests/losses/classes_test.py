"""The Keras Loss classes: config round-trips, model.compile, and tf-keras."""

import inspect
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from focal_dist import losses as fl

CONFIGS = [
    (
        fl.BinaryFocalCrossentropy,
        dict(
            gamma=0.5,
            alpha=0.7,
            apply_class_balancing=True,
            from_logits=True,
            label_smoothing=0.05,
            axis=-1,
            class_weight={0: 0.5, 1: 3.0},
            name="bfc",
        ),
    ),
    (
        fl.BinaryFocalCrossentropy,
        dict(class_weight=[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], reduction="global_mean"),
    ),
    (
        fl.CategoricalFocalCrossentropy,
        dict(
            gamma=3.0, alpha=[0.1, 0.2, 0.7], from_logits=True, label_smoothing=0.1, reduction="sum"
        ),
    ),
    (
        fl.SparseCategoricalFocalCrossentropy,
        dict(gamma=1.0, alpha=0.5, class_weight=[1.0, 2.0, 0.5], ignore_class=-1, reduction="none"),
    ),
]


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_get_config_round_trips_every_argument_through_json(cls, kwargs):
    loss = cls(**kwargs)
    config = loss.get_config()
    for key, value in kwargs.items():
        expected = value.tolist() if isinstance(value, np.ndarray) else value
        assert config[key] == expected, key
    assert config["reduction"] == kwargs.get("reduction", "sum_over_batch_size")
    restored = cls.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    # Keras's own serialization finds the registered class.
    again = keras.losses.deserialize(json.loads(json.dumps(keras.losses.serialize(loss))))
    assert type(again) is cls
    assert again.get_config() == config


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_restored_loss_computes_the_same_values(cls, kwargs):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 3)).astype("f4")
    y_pred = logits if kwargs.get("from_logits") else tf.nn.sigmoid(logits).numpy()
    if cls is fl.SparseCategoricalFocalCrossentropy:
        y_true = np.array([0, 1, 2, -1, 1, 0])
        y_pred = tf.nn.softmax(logits).numpy()
    elif cls is fl.CategoricalFocalCrossentropy:
        y_true = np.eye(3, dtype="f4")[[0, 1, 2, 2, 1, 0]]
    else:
        y_true = (rng.random((6, 3)) < 0.5).astype("f4")
    loss = cls(**kwargs)
    restored = cls.from_config(json.loads(json.dumps(loss.get_config())))
    np.testing.assert_array_equal(loss(y_true, y_pred).numpy(), restored(y_true, y_pred).numpy())
    expected_shape = (6,) if kwargs.get("reduction") == "none" else ()
    assert loss(y_true, y_pred).shape == expected_shape


def test_reduction_none_returns_per_example_losses_equal_to_the_function():
    rng = np.random.default_rng(1)
    y_true, logits = (rng.random((5, 4)) < 0.3).astype("f4"), rng.normal(size=(5, 4)).astype("f4")
    values = fl.BinaryFocalCrossentropy(gamma=1.5, from_logits=True, reduction="none")(
        y_true, logits
    )
    direct = fl.binary_focal_crossentropy(y_true, logits, gamma=1.5, from_logits=True)
    np.testing.assert_array_equal(values.numpy(), direct.numpy())


@pytest.mark.parametrize("reduction", [None, "sum_over_batch_size", "global_mean"])
def test_default_and_global_mean_reductions_are_the_weighted_batch_mean_on_one_device(reduction):
    rng = np.random.default_rng(7)
    y_true, logits = (rng.random((5, 4)) < 0.3).astype("f4"), rng.normal(size=(5, 4)).astype("f4")
    weights = rng.uniform(0, 2, 5).astype("f4")
    kwargs = {} if reduction is None else {"reduction": reduction}
    value = fl.BinaryFocalCrossentropy(from_logits=True, **kwargs)(y_true, logits, weights)
    direct = fl.binary_focal_crossentropy(y_true, logits, from_logits=True).numpy()
    assert value.shape == ()
    np.testing.assert_allclose(value.numpy(), np.mean(direct * weights), rtol=1e-6)


def test_unknown_reduction_is_refused_naming_it():
    with pytest.raises(ValueError, match="global_sum"):
        fl.BinaryFocalCrossentropy(reduction="global_sum")


def test_bad_constructor_arguments_fail_at_construction():
    with pytest.raises(ValueError, match=r"gamma.*-2"):
        fl.BinaryFocalCrossentropy(gamma=-2)
    with pytest.raises(ValueError, match=r"alpha.*1\.5"):
        fl.BinaryFocalCrossentropy(alpha=1.5)
    with pytest.raises(ValueError, match=r"class_weight.*>= 0"):
        fl.BinaryFocalCrossentropy(class_weight=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"label_smoothing.*3"):
        fl.CategoricalFocalCrossentropy(label_smoothing=3)


def _tiny_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


def test_model_compile_and_fit_minimise_the_weighted_mean_focal_loss():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 4)).astype("f4")
    y = (rng.random((32, 3)) < 0.2).astype("f4")
    w = rng.uniform(0.5, 1.5, 32).astype("f4")
    model = _tiny_model()
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=fl.BinaryFocalCrossentropy(from_logits=True, class_weight={0: 1.0, 1: 5.0}),
    )
    # Keras evaluates the per-example losses as a weighted mean over the batch.
    reported = model.evaluate(x, y, sample_weight=w, batch_size=32, verbose=0)
    per_example = fl.binary_focal_crossentropy(
        y, model(x), from_logits=True, class_weight={0: 1.0, 1: 5.0}
    )
    np.testing.assert_allclose(reported, np.mean(per_example.numpy() * w), rtol=1e-5)
    history = model.fit(x, y, sample_weight=w, batch_size=32, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_sparse_class_works_in_model_compile():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 4)).astype("f4")
    labels = rng.integers(0, 3, 16)
    model = _tiny_model()
    model.compile(optimizer="sgd", loss=fl.SparseCategoricalFocalCrossentropy(from_logits=True))
    reported = model.evaluate(x, labels, batch_size=16, verbose=0)
    expected = fl.sparse_categorical_focal_crossentropy(labels, model(x), from_logits=True)
    np.testing.assert_allclose(reported, np.mean(expected.numpy()), rtol=1e-5)


def test_classes_are_tf_keras_losses_under_tf_use_legacy_keras():
    script = textwrap.dedent(
        """
        import numpy as np, tensorflow as tf, tf_keras
        from focal_dist import losses as fl
        assert issubclass(fl.BinaryFocalCrossentropy, tf_keras.losses.Loss)
        loss = fl.BinaryFocalCrossentropy(from_logits=True, gamma=2.0)
        y = np.array([[0.0, 1.0], [0.0, 0.0]])
        x = np.array([[-18.6, 0.51], [2.94, -12.8]])
        assert loss(y, x).shape == ()
        loss = fl.BinaryFocalCrossentropy(from_logits=True, gamma=2.0, reduction="none")
        per_example = loss(y, x).numpy()
        again = fl.BinaryFocalCrossentropy.from_config(loss.get_config())
        np.testing.assert_allclose(again(y, x).numpy(), per_example)
        ref = fl.binary_focal_crossentropy(y, x, from_logits=True, gamma=2.0).numpy()
        np.testing.assert_allclose(per_example, ref)
        model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
        model.compile("sgd", loss=fl.CategoricalFocalCrossentropy(from_logits=True))
        model.fit(np.ones((4, 3)), np.eye(2)[[0, 1, 0, 1]], verbose=0)
        print("tf_keras ok", per_example.tolist())
        """
    )
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tf_keras ok" in result.stdout


# --- the imbalance losses' classes, and arguments derived from the functions -------

LOG_PRIOR = [-0.5, -1.5, -3.0]
NEW_CONFIGS = [
    (
        fl.BinaryFocalCrossentropy,
        dict(
            alpha=[0.1, 0.5, 0.9],
            apply_class_balancing=True,
            gamma_schedule="flsd53",
            poly_epsilon=1.0,
            from_logits=True,
        ),
    ),
    (fl.CategoricalFocalCrossentropy, dict(gamma_schedule="flsd53", poly_epsilon=-1.0)),
    (fl.SparseCategoricalFocalCrossentropy, dict(poly_epsilon=2.0, ignore_class=-1)),
    (
        fl.AsymmetricLoss,
        dict(gamma_pos=1.0, gamma_neg=3.0, clip=0.1, from_logits=True, detach_focusing=True),
    ),
    (fl.AsymmetricLoss, dict(reduction="none", name="asl")),
    (fl.LogitAdjustedCrossentropy, dict(log_prior=LOG_PRIOR, tau=0.5, ignore_class=-1)),
    (fl.LogitAdjustedCrossentropy, dict(log_prior=np.array(LOG_PRIOR), reduction="global_mean")),
    (fl.LogitAdjustedBinaryCrossentropy, dict(positive_rate=[0.1, 0.2, 0.3], tau=2.0)),
    (fl.LogitAdjustedBinaryCrossentropy, dict(positive_rate=0.05, reduction="none")),
]
FUNCTIONS = {
    fl.BinaryFocalCrossentropy: fl.binary_focal_crossentropy,
    fl.CategoricalFocalCrossentropy: fl.categorical_focal_crossentropy,
    fl.SparseCategoricalFocalCrossentropy: fl.sparse_categorical_focal_crossentropy,
    fl.AsymmetricLoss: fl.asymmetric_loss,
    fl.LogitAdjustedCrossentropy: fl.logit_adjusted_crossentropy,
    fl.LogitAdjustedBinaryCrossentropy: fl.logit_adjusted_binary_crossentropy,
}


def _labels_for(cls, rng, ignore_class=None):
    if cls in (fl.SparseCategoricalFocalCrossentropy, fl.LogitAdjustedCrossentropy):
        return np.array([0, 1, 2, 0 if ignore_class is None else ignore_class, 1, 0])
    if cls is fl.CategoricalFocalCrossentropy:
        return np.eye(3, dtype="f4")[[0, 1, 2, 2, 1, 0]]
    return (rng.random((6, 3)) < 0.5).astype("f4")


@pytest.mark.parametrize("cls", list(FUNCTIONS))
def test_each_class_takes_its_functions_keyword_arguments_with_the_same_defaults(cls):
    function = inspect.signature(FUNCTIONS[cls]).parameters.values()
    expected = {p.name: p.default for p in function if p.kind is p.KEYWORD_ONLY}
    signature = inspect.signature(cls).parameters
    assert list(signature)[: len(expected)] == list(expected)
    assert {name: signature[name].default for name in expected} == expected
    assert signature["name"].default == FUNCTIONS[cls].__name__
    if inspect.Parameter.empty not in expected.values():
        config = cls().get_config()
        assert {key: config[key] for key in expected} == expected


@pytest.mark.parametrize(("cls", "kwargs"), NEW_CONFIGS)
def test_new_configs_round_trip_through_json_and_keras_serialization(cls, kwargs):
    loss = cls(**kwargs)
    config = loss.get_config()
    for key, value in kwargs.items():
        assert config[key] == (value.tolist() if isinstance(value, np.ndarray) else value), key
    restored = cls.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    again = keras.losses.deserialize(json.loads(json.dumps(keras.losses.serialize(loss))))
    assert type(again) is cls
    assert again.get_config() == config


@pytest.mark.parametrize(("cls", "kwargs"), NEW_CONFIGS)
def test_keras_load_model_restores_each_loss_without_custom_objects(cls, kwargs, tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=cls(**kwargs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.loss) is cls
    assert loaded.loss.get_config() == model.loss.get_config()


@pytest.mark.parametrize(("cls", "kwargs"), NEW_CONFIGS)
def test_reductions_are_the_functions_values_their_mean_and_the_global_mean(cls, kwargs):
    rng = np.random.default_rng(11)
    kwargs = {k: v for k, v in kwargs.items() if k not in ("reduction", "name")}
    y_true = _labels_for(cls, rng, kwargs.get("ignore_class"))
    logits = rng.normal(size=(6, 3)).astype("f4")
    direct = FUNCTIONS[cls](y_true, logits, **kwargs).numpy()
    valid = y_true != kwargs["ignore_class"] if "ignore_class" in kwargs else np.ones(6, bool)
    weights = rng.uniform(0.5, 2.0, 6).astype("f4")
    per_example = cls(reduction="none", **kwargs)(y_true, logits)
    np.testing.assert_allclose(per_example.numpy(), direct, rtol=1e-6)
    expected = (direct * weights)[valid].sum() / valid.sum()
    np.testing.assert_allclose(
        fl.compute_global_loss(per_example, weights).numpy(), expected, rtol=1e-5
    )
    for reduction in ("sum_over_batch_size", "global_mean"):
        value = cls(reduction=reduction, **kwargs)(y_true, logits, sample_weight=weights)
        np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5, err_msg=reduction)


def test_unknown_and_missing_arguments_are_refused_naming_them():
    with pytest.raises(TypeError, match="gama"):
        fl.BinaryFocalCrossentropy(gama=2.0)
    with pytest.raises(TypeError, match=r"LogitAdjustedCrossentropy needs log_prior="):
        fl.LogitAdjustedCrossentropy()
    with pytest.raises(TypeError, match=r"needs positive_rate="):
        fl.LogitAdjustedBinaryCrossentropy(tau=1.0)


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (fl.BinaryFocalCrossentropy, dict(poly_epsilon=-2.0), r"poly_epsilon.*-2\.0"),
        (fl.BinaryFocalCrossentropy, dict(alpha=[0.5, 1.5]), r"alpha entries.*1\.5"),
        (fl.CategoricalFocalCrossentropy, dict(gamma_schedule="FLSD"), r"gamma_schedule.*'FLSD'"),
        (fl.AsymmetricLoss, dict(clip=2.0), r"clip.*\[0, 1\].*2\.0"),
        (fl.AsymmetricLoss, dict(gamma_neg=-4), r"gamma_neg.*-4"),
        (fl.LogitAdjustedCrossentropy, dict(log_prior=[0.0, float("-inf")]), r"log_prior.*-inf"),
        (fl.LogitAdjustedCrossentropy, dict(log_prior=LOG_PRIOR, tau=-0.5), r"tau.*-0\.5"),
        (fl.LogitAdjustedBinaryCrossentropy, dict(positive_rate=1.0), r"positive_rate.*1\.0"),
    ],
)
def test_bad_new_arguments_fail_at_construction(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)
