"""After training, the CLI hands over a decision: probabilities calibrated on a split
training never saw, a threshold chosen there, both inside a SavedModel that TensorFlow
alone serves, and their effect reported on the eval split."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.serving import fresh_process
from tests.training import runs

pytestmark = pytest.mark.slow

SMALL = {
    "train.steps": 200,
    "train.global_batch_size": 256,
    "train.eval_every": 0,
    "train.checkpoint_every": 200,
    "data.num_features": 8,
    "data.synthetic.num_train": 16384,
    "data.synthetic.num_eval": 8192,
    # The two held-out splits differ in size: each figure below names the split it is on.
    "data.synthetic.num_calibration": 6144,
    "data.synthetic.positive_rate": 0.02,
    "model.hidden_units": "(16,)",
}


def _ece(probabilities, labels, bins=15):
    """Expected calibration error, 15 equal-width bins, written from the definition."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            gap = abs(probabilities[members].mean() - labels[members].mean())
            total += members.mean() * gap
    return total


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("decide")
    runs.run(runs.train_command("default", workdir, SMALL))
    return workdir


def _split(first: int, size: int):
    from focal_dist.data.synthetic import SyntheticData

    data = SyntheticData(num_features=8, positive_rate=0.02)
    return data.examples(tf.range(first, first + size, dtype=tf.int64))


def _eval_split():
    return _split(16384, 8192)


def _calibrated(workdir, x) -> np.ndarray:
    import keras

    parameters = runs.summary(workdir)["calibration"]["parameters"]
    model = keras.models.load_model(workdir / "export" / "model.keras", compile=False)
    logits = model(x).numpy()[:, 0].astype(np.float64)
    return 1 / (1 + np.exp(-(parameters["scale"][0] * logits + parameters["offset"][0])))


def _counts(flagged, labels) -> tuple[int, int, int]:
    tp = int(np.sum(flagged & (labels == 1)))
    return tp, int(np.sum(flagged & (labels == 0))), int(np.sum(~flagged & (labels == 1)))


def _f1(tp, fp, fn) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def test_calibration_on_its_own_split_brings_the_eval_ece_down_as_numpy_counts_it(trained):
    import keras

    summary = runs.summary(trained)
    calibration = summary["calibration"]
    assert calibration["method"] == "platt"
    assert calibration["parameters"]["num_examples"] == 6144  # the calibration split
    x, y = _eval_split()
    model = keras.models.load_model(trained / "export" / "model.keras", compile=False)
    logits = model(x).numpy()[:, 0].astype(np.float64)
    labels = y.numpy()[:, 0]
    a, b = calibration["parameters"]["scale"][0], calibration["parameters"]["offset"][0]
    raw, calibrated = 1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(-(a * logits + b)))
    np.testing.assert_allclose(calibration["before"]["ece"], _ece(raw, labels), atol=1e-5)
    np.testing.assert_allclose(calibration["after"]["ece"], _ece(calibrated, labels), atol=1e-5)
    assert calibration["after"]["ece"] < calibration["before"]["ece"] / 3
    # Class weights pushed the raw mean probability far above the positive rate.
    assert raw.mean() > 2 * labels.mean()
    assert abs(calibrated.mean() - labels.mean()) < 0.3 * labels.mean()


def test_the_decision_is_chosen_on_the_calibration_split_and_reported_on_eval(trained):
    decision = runs.summary(trained)["decision"]
    assert decision["target"] == "f1"
    (threshold,) = decision["thresholds"]
    # Chosen on the calibration split (examples 24576 on): its F1 is the largest any
    # threshold gives there, by brute force over every distinct calibrated probability.
    x, y = _split(16384 + 8192, 6144)
    probabilities, labels = _calibrated(trained, x), y.numpy()[:, 0]
    best = max(_f1(*_counts(probabilities >= t, labels)) for t in np.unique(probabilities))
    chosen = _counts(probabilities >= threshold, labels)
    assert _f1(*chosen) == pytest.approx(best, abs=1e-12)
    on_calibration = decision["calibration_split"]["points"][0]
    assert on_calibration["num_examples"] == 6144
    assert (
        on_calibration["true_positives"],
        on_calibration["false_positives"],
        on_calibration["false_negatives"],
    ) == chosen
    # Reported on eval: the counts of that threshold on the eval split, not the other's.
    x, y = _eval_split()
    on_eval = _counts(_calibrated(trained, x) >= threshold, y.numpy()[:, 0])
    point = decision["eval"]["points"][0]
    assert point["num_examples"] == 8192
    assert (point["true_positives"], point["false_positives"], point["false_negatives"]) == on_eval
    assert on_eval != chosen
    assert on_eval[0] + on_eval[2] > 0


def test_tensorflow_alone_serves_calibrated_probabilities_and_decisions(trained, tmp_path):
    import keras

    summary = runs.summary(trained)
    parameters = summary["calibration"]["parameters"]
    (threshold,) = summary["decision"]["thresholds"]
    x, _ = _eval_split()
    features = x.numpy()[:300]
    np.save(tmp_path / "features.npy", features)
    example = tf.train.Example(
        features=tf.train.Features(
            feature={"features": tf.train.Feature(float_list=tf.train.FloatList(value=features[0]))}
        )
    )
    import base64

    jobs = [
        {
            "directory": str(trained / "export" / "saved_model"),
            "signature": "serving_default",
            "input": "features",
            "values": str(tmp_path / "features.npy"),
            "output": str(tmp_path / "default.npz"),
        },
        {
            "directory": str(trained / "export" / "saved_model"),
            "signature": "examples",
            "input": "examples",
            "b64": [base64.b64encode(example.SerializeToString()).decode()],
            "output": str(tmp_path / "examples.npz"),
        },
    ]
    assert fresh_process.serve(tmp_path, jobs) == []
    served = np.load(tmp_path / "default.npz")
    model = keras.models.load_model(trained / "export" / "model.keras", compile=False)
    logits = model(features).numpy().astype(np.float64)
    expected = 1 / (1 + np.exp(-(parameters["scale"][0] * logits + parameters["offset"][0])))
    np.testing.assert_allclose(served["logits"], logits, atol=1e-6)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-6)
    clear = np.abs(expected - threshold) > 1e-6
    np.testing.assert_array_equal(served["decisions"][clear], (expected >= threshold)[clear])
    from_example = np.load(tmp_path / "examples.npz")
    np.testing.assert_allclose(from_example["probabilities"][0], expected[0], atol=1e-6)
    deploy = json.loads((trained / "export" / "deploy.json").read_text())
    assert deploy["calibration"]["scale"] == parameters["scale"]
    shown = fresh_process.saved_model_cli_show(trained / "export" / "saved_model")
    for piece in (
        "signature_def['serving_default']",
        "outputs['probabilities']",
        "outputs['decisions']",
        "outputs['logits']",
        "signature_def['examples']",
    ):
        assert piece in shown


def test_without_a_calibration_split_the_export_is_uncalibrated_and_says_so(tmp_path):
    overrides = {**SMALL, "train.steps": 20, "data.synthetic.num_calibration": 0}
    result = runs.run(runs.train_command("default", tmp_path, overrides))
    assert "exporting uncalibrated probabilities" in result.stderr
    summary = runs.summary(tmp_path)
    assert summary["calibration"]["method"] == "none"
    assert summary["decision"]["thresholds"] == [0.5]
    assert (tmp_path / "export" / "saved_model" / "saved_model.pb").exists()
