"""The SavedModel as TF Serving loads it: a fresh process with TensorFlow alone calls
every signature; probabilities equal the Keras model plus calibration to 1e-6."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from focal_dist.data.images import ImageOptions, decode
from focal_dist.distribute import get_backend
from focal_dist.serving import (
    Calibration,
    ExampleSpec,
    choose_threshold,
    export_saved_model,
    fit_calibration,
    write_deploy_json,
)

BACKEND = get_backend("default")
BIN = Path(sys.executable).parent
LOADER = Path(__file__).with_name("load_saved_model.py")
NUM_ROWS = 64


def _mlp(num_features, num_outputs, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((num_features,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_outputs)(hidden))


def _cnn(num_classes):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def _example(**features):
    feature = {
        name: tf.train.Feature(float_list=tf.train.FloatList(value=np.atleast_1d(values)))
        for name, values in features.items()
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _b64(values):
    return [base64.b64encode(v).decode() for v in values]


def _fitted(model, features, label_mode, rng, **options):
    logits = model.predict(features, verbose=0)
    if label_mode == "sparse":
        labels = rng.integers(0, logits.shape[1], len(logits))
    else:
        labels = (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(float)
    calibration = fit_calibration(logits, labels, label_mode=label_mode, backend=BACKEND, **options)
    thresholds = None
    if label_mode != "sparse":
        probabilities = calibration.apply_numpy(logits)
        thresholds = choose_threshold(
            probabilities, labels, target="f1", backend=BACKEND
        ).thresholds
    return calibration, thresholds


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Four exports (binary, multi-label, multi-class, images) and one fresh-process
    load that calls each of their signatures."""
    root = tmp_path_factory.mktemp("exports")
    rng = np.random.default_rng(0)
    cases, jobs = {}, []

    def add(name, model, features, label_mode, export_options, requests, **fit_options):
        calibration, thresholds = _fitted(model, features, label_mode, rng, **fit_options)
        directory = str(root / name / "saved_model")
        signatures = export_saved_model(
            model,
            calibration=calibration,
            thresholds=thresholds,
            directory=directory,
            **export_options,
        )
        cases[name] = dict(
            model=model,
            features=features,
            calibration=calibration,
            thresholds=thresholds,
            directory=directory,
            signatures=signatures,
        )
        for signature, (input_name, values) in requests.items():
            job = {
                "directory": directory,
                "signature": signature,
                "input": input_name,
                "output": str(root / f"{name}-{signature}.npz"),
            }
            if isinstance(values, np.ndarray):
                np.save(root / f"{name}-{signature}.npy", values)
                job["values"] = str(root / f"{name}-{signature}.npy")
            else:
                job["b64"] = _b64(values)
            jobs.append(job)

    x = rng.normal(size=(NUM_ROWS, 6)).astype(np.float32)
    add(
        "binary",
        _mlp(6, 1, 0),
        x,
        "binary",
        dict(features_spec=(6,), example_spec=ExampleSpec(vector_key="features", num_features=6)),
        {
            "serving_default": ("features", x),
            "examples": ("examples", [_example(features=r) for r in x]),
        },
    )
    columns = ("f0", "f1", "f2", "f3", "f4")
    x = rng.normal(size=(NUM_ROWS, 5)).astype(np.float32)
    add(
        "multi_label",
        _mlp(5, 4, 1),
        x,
        "multi_label",
        dict(
            features_spec=tf.TensorSpec([None, 5]), example_spec=ExampleSpec(column_names=columns)
        ),
        {
            "serving_default": ("features", x),
            "examples": ("examples", [_example(**dict(zip(columns, r, strict=True))) for r in x]),
        },
        deploy_positive_rate=[0.01, 0.1, 0.2, 0.5],
    )
    x = rng.normal(size=(NUM_ROWS, 3)).astype(np.float32)
    add(
        "sparse",
        _mlp(3, 5, 2),
        x,
        "sparse",
        dict(features_spec=(3,)),
        {"serving_default": ("features", x)},
        deploy_positive_rate=[0.2] * 5,
    )
    options = ImageOptions(image_size=(16, 16), channels=3, augment=True)
    pictures = [rng.integers(0, 256, size=(20 + i % 5, 24, 3), dtype=np.uint8) for i in range(12)]
    encoded = [tf.io.encode_png(p).numpy() for p in pictures[:6]] + [
        tf.io.encode_jpeg(p).numpy() for p in pictures[6:]
    ]
    x = tf.stack(
        [decode(tf.constant(e), ImageOptions((16, 16), augment=False)) for e in encoded]
    ).numpy()
    add(
        "images",
        _cnn(3),
        x,
        "sparse",
        dict(features_spec=(16, 16, 3), image_options=options),
        {"serving_default": ("features", x), "image_bytes": ("image_bytes", encoded)},
    )
    jobs.append(
        {
            "directory": cases["images"]["directory"],
            "signature": "serving_default",
            "input": "features",
            "values": str(root / "empty.npy"),
            "output": str(root / "empty.npz"),
        }
    )
    np.save(root / "empty.npy", np.zeros((0, 16, 16, 3), np.float32))
    (root / "jobs.json").write_text(json.dumps(jobs))
    # TensorFlow imports Keras when it can; packages that raise on import make sure the
    # SavedModel serves without Keras or focal_dist, as in TF Serving.
    blocked = root / "blocked"
    for package in ("keras", "tf_keras", "focal_dist"):
        (blocked / package).mkdir(parents=True)
        (blocked / package / "__init__.py").write_text(f"raise ImportError('no {package} here')\n")
    env = dict(os.environ, PYTHONPATH=str(blocked))
    result = subprocess.run(
        [sys.executable, str(LOADER), str(root / "jobs.json")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    modules = json.loads((root / "jobs.json.modules.json").read_text())["modules"]
    return root, cases, modules


def _expected(case):
    logits = case["model"].predict(case["features"], verbose=0).astype(np.float64)
    probabilities = case["calibration"].apply_numpy(logits)
    if case["thresholds"] is None:
        decisions = probabilities.argmax(axis=1)
    else:
        decisions = (probabilities >= np.asarray(case["thresholds"])).astype(np.int64)
    return logits, probabilities, decisions


def test_the_fresh_process_served_without_focal_dist_or_keras(exports):
    assert exports[2] == []


@pytest.mark.parametrize(
    ("name", "signature"),
    [
        ("binary", "serving_default"),
        ("binary", "examples"),
        ("multi_label", "serving_default"),
        ("multi_label", "examples"),
        ("sparse", "serving_default"),
        ("images", "serving_default"),
        ("images", "image_bytes"),
    ],
)
def test_every_signature_serves_the_keras_model_plus_calibration(exports, name, signature):
    root, cases, _ = exports
    case = cases[name]
    served = np.load(root / f"{name}-{signature}.npz")
    logits, probabilities, decisions = _expected(case)
    np.testing.assert_allclose(served["logits"], logits, atol=1e-6)
    np.testing.assert_allclose(served["probabilities"], probabilities, atol=1e-6)
    assert served["decisions"].dtype == np.int64
    if case["thresholds"] is None:
        assert served["decisions"].shape == (NUM_ROWS if name != "images" else 12,)
        np.testing.assert_array_equal(served["decisions"], decisions)
    else:
        near = np.abs(probabilities - np.asarray(case["thresholds"])) < 1e-6
        np.testing.assert_array_equal(served["decisions"][~near], decisions[~near])
    assert signature in case["signatures"]


def test_an_empty_request_gets_empty_outputs_without_running_the_convolution(exports):
    served = np.load(exports[0] / "empty.npz")
    assert served["probabilities"].shape == (0, 3)
    assert served["decisions"].shape == (0,)


def test_saved_model_cli_shows_every_signature_with_its_inputs_and_outputs(exports):
    _, cases, _ = exports
    shown = subprocess.run(
        [str(BIN / "saved_model_cli"), "show", "--dir", cases["images"]["directory"], "--all"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = shown.stdout
    for piece in (
        "signature_def['serving_default']",
        "signature_def['image_bytes']",
        "inputs['features'] tensor_info",
        "shape: (-1, 16, 16, 3)",
        "inputs['image_bytes'] tensor_info",
        "dtype: DT_STRING",
        "outputs['probabilities']",
        "outputs['decisions']",
        "outputs['logits']",
    ):
        assert piece in text, piece


def test_non_finite_features_fail_the_request(exports):
    loaded = tf.saved_model.load(exports[1]["binary"]["directory"])
    features = np.zeros((2, 6), np.float32)
    features[1, 3] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="features must be finite"):
        loaded.signatures["serving_default"](features=tf.constant(features))


def test_a_new_export_replaces_the_earlier_one_whole_and_a_refused_one_leaves_it(tmp_path):
    model = _mlp(4, 1, 5)
    directory = tmp_path / "saved_model"
    identity = Calibration.identity(label_mode="binary", num_outputs=1)
    (tmp_path / "saved_model.partial").mkdir()  # left by an export killed half-way
    export_saved_model(
        model, calibration=identity, thresholds=[1.0], directory=str(directory), features_spec=(4,)
    )
    export_saved_model(
        model, calibration=identity, thresholds=[0.0], directory=str(directory), features_spec=(4,)
    )
    with pytest.raises(ValueError, match=r"thresholds must be 1 value\(s\) in \[0, 1\]"):
        export_saved_model(
            model,
            calibration=identity,
            thresholds=[2.0],
            directory=str(directory),
            features_spec=(4,),
        )
    with pytest.raises(ValueError, match="the calibration has 3 output"):
        export_saved_model(
            model,
            calibration=Calibration.identity(label_mode="multi_label", num_outputs=3),
            thresholds=[0.5] * 3,
            directory=str(directory),
            features_spec=(4,),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]
    served = tf.saved_model.load(str(directory)).signatures["serving_default"](
        features=tf.ones((3, 4))
    )
    np.testing.assert_array_equal(served["decisions"].numpy(), np.ones((3, 1)))  # threshold 0


def test_a_model_built_under_mirrored_replicas_exports_from_its_variables(tmp_path):
    backend = get_backend("mirrored", num_cpu_devices=4)
    with backend.scope():
        model = _mlp(3, 1, 6)
    x = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    identity = Calibration.identity(label_mode="binary", num_outputs=1)
    export_saved_model(
        model,
        calibration=identity,
        thresholds=[0.5],
        directory=str(tmp_path / "m"),
        features_spec=(3,),
    )
    served = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"](
        features=tf.constant(x)
    )
    np.testing.assert_allclose(served["logits"].numpy(), model.predict(x, verbose=0), atol=1e-6)


def test_deploy_json_holds_thresholds_calibration_priors_and_config(exports, tmp_path):
    case = exports[1]["multi_label"]
    decision = choose_threshold(
        case["calibration"].apply_numpy(case["model"].predict(case["features"], verbose=0)),
        (np.arange(NUM_ROWS * 4).reshape(-1, 4) % 3 == 0).astype(float),
        target="recall:0.8",
        backend=BACKEND,
    )
    path = write_deploy_json(
        str(tmp_path),
        calibration=case["calibration"],
        decision=decision,
        class_names=["a", "b", "c", "d"],
        config={"task": {"name": "multi_label"}},
        signatures=case["signatures"],
    )
    document = json.loads(Path(path).read_text())
    assert document["decision"]["target"] == "recall:0.8"
    assert document["decision"]["thresholds"] == list(decision.thresholds)
    assert (
        Calibration.from_dict({k: v for k, v in document["calibration"].items() if k != "formula"})
        == case["calibration"]
    )
    assert document["priors"]["deployment"] == [0.01, 0.1, 0.2, 0.5]
    assert document["class_names"] == ["a", "b", "c", "d"]
    assert document["config"]["task"]["name"] == "multi_label"
    assert set(document["saved_model"]["signatures"]) == {"serving_default", "examples"}
    with pytest.raises(ValueError, match="class_names has 2 names for 4 outputs"):
        write_deploy_json(
            str(tmp_path),
            calibration=case["calibration"],
            decision=decision,
            class_names=["a", "b"],
        )
