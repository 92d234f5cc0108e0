"""The SavedModel as TF Serving loads it: a fresh process with TensorFlow alone calls
every signature; probabilities equal the Keras model plus calibration to 1e-6."""

import numpy as np
import pytest
import tensorflow as tf

from focal_dist.data.images import ImageOptions, decode
from focal_dist.serving import ExampleSpec, export_saved_model
from tests.serving import fresh_process, models

NUM_ROWS = 64


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Four exports (binary, multi-label, multi-class, images) and one fresh-process
    load that calls each of their signatures."""
    root = tmp_path_factory.mktemp("exports")
    rng = np.random.default_rng(0)
    cases, jobs = {}, []

    def add(name, model, features, label_mode, export_options, requests, **fit_options):
        calibration, thresholds = models.fitted(model, features, label_mode, rng, **fit_options)
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
                job["b64"] = models.b64(values)
            jobs.append(job)

    x = rng.normal(size=(NUM_ROWS, 6)).astype(np.float32)
    add(
        "binary",
        models.mlp(6, 1, 0),
        x,
        "binary",
        dict(features_spec=(6,), example_spec=ExampleSpec(vector_key="features", num_features=6)),
        {
            "serving_default": ("features", x),
            "examples": ("examples", [models.example(features=r) for r in x]),
        },
    )
    columns = ("f0", "f1", "f2", "f3", "f4")
    x = rng.normal(size=(NUM_ROWS, 5)).astype(np.float32)
    add(
        "multi_label",
        models.mlp(5, 4, 1),
        x,
        "multi_label",
        dict(
            features_spec=tf.TensorSpec([None, 5]), example_spec=ExampleSpec(column_names=columns)
        ),
        {
            "serving_default": ("features", x),
            "examples": (
                "examples",
                [models.example(**dict(zip(columns, r, strict=True))) for r in x],
            ),
        },
        deploy_positive_rate=[0.01, 0.1, 0.2, 0.5],
    )
    x = rng.normal(size=(NUM_ROWS, 3)).astype(np.float32)
    add(
        "sparse",
        models.mlp(3, 5, 2),
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
        models.cnn(3),
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
    modules = fresh_process.serve(root, jobs)
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
    text = fresh_process.saved_model_cli_show(cases["images"]["directory"])
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
