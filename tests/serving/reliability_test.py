"""ECE, NLL and Brier against independent NumPy and scikit-learn computations; the
reliability diagram as TensorBoard takes it."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import special
from sklearn.metrics import brier_score_loss, log_loss

from focal_dist.distribute import get_backend
from focal_dist.serving import calibration_metrics, fit_calibration, reliability_diagram
from tests.serving import data

BACKEND = get_backend("default")


def _reference_ece(probabilities, positives, num_bins=15):
    """sum over bins of (bin share) x |mean probability - positive rate|, bin by bin."""
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    ece = 0.0
    for b in range(num_bins):
        upper = probabilities <= edges[b + 1] if b == num_bins - 1 else probabilities < edges[b + 1]
        inside = (probabilities >= edges[b]) & upper
        if inside.any():
            share = inside.mean()
            ece += share * abs(probabilities[inside].mean() - positives[inside].mean())
    return ece


@pytest.mark.parametrize("calibrated", [False, True])
def test_binary_and_per_label_metrics_equal_independent_references(calibrated):
    for label_mode, (logits, labels) in [
        ("binary", data.binary()),
        ("multi_label", data.multi_label()),
    ]:
        if calibrated:
            calibration = fit_calibration(logits, labels, label_mode=label_mode, backend=BACKEND)
            logits = calibration.logits_numpy(logits)
        metrics = calibration_metrics(logits, labels, label_mode=label_mode, backend=BACKEND)
        p = special.expit(np.asarray(logits, np.float64))
        for c in range(labels.shape[1]):
            np.testing.assert_allclose(
                metrics.ece[c], _reference_ece(p[:, c], labels[:, c]), rtol=1e-10
            )
            np.testing.assert_allclose(metrics.nll[c], log_loss(labels[:, c], p[:, c]), rtol=1e-9)
            np.testing.assert_allclose(
                metrics.brier[c], brier_score_loss(labels[:, c], p[:, c]), rtol=1e-10
            )
        assert metrics.num_examples == data.NUM_EXAMPLES


def test_calibration_lowers_the_ece_of_a_miscalibrated_model():
    logits, labels = data.binary(n=20_000)
    before = calibration_metrics(logits, labels, label_mode="binary", backend=BACKEND)
    calibration = fit_calibration(logits, labels, label_mode="binary", backend=BACKEND)
    after = calibration_metrics(
        calibration.logits_numpy(logits), labels, label_mode="binary", backend=BACKEND
    )
    assert after.ece[0] < before.ece[0] / 3
    assert after.nll[0] < before.nll[0]


def test_top_label_and_classwise_ece_nll_and_brier_of_multiclass():
    logits, labels = data.sparse()
    metrics = calibration_metrics(logits, labels, label_mode="sparse", backend=BACKEND)
    p = special.softmax(logits.astype(np.float64), axis=1)
    y = np.eye(data.NUM_CLASSES)[labels]
    top = _reference_ece(p.max(axis=1), (p.argmax(axis=1) == labels).astype(float))
    classwise = np.mean([_reference_ece(p[:, k], y[:, k]) for k in range(data.NUM_CLASSES)])
    summary = metrics.to_dict()
    np.testing.assert_allclose(summary["top_label_ece"], top, rtol=1e-10)
    np.testing.assert_allclose(summary["classwise_ece"], classwise, rtol=1e-10)
    np.testing.assert_allclose(summary["nll"], log_loss(labels, p), rtol=1e-9)
    np.testing.assert_allclose(summary["brier"], np.mean(np.sum((p - y) ** 2, axis=1)), rtol=1e-10)


def test_probability_one_falls_in_the_last_bin_and_extreme_logits_keep_nll_finite():
    logits = np.array([[800.0], [-800.0], [0.0]])
    labels = np.array([[1.0], [0.0], [1.0]])
    metrics = calibration_metrics(logits, labels, label_mode="binary", backend=BACKEND)
    assert metrics.bins[0].count.tolist() == [1] + [0] * 6 + [1] + [0] * 6 + [1]
    np.testing.assert_allclose(metrics.nll[0], np.log(2) / 3)
    np.testing.assert_allclose(metrics.ece[0], 0.5 / 3)


def test_summary_and_scalars_name_every_label():
    logits, labels = data.multi_label()
    metrics = calibration_metrics(logits, labels, label_mode="multi_label", backend=BACKEND)
    summary = metrics.to_dict()
    assert len(summary["ece"]) == data.NUM_LABELS
    np.testing.assert_allclose(summary["mean_ece"], np.mean(metrics.ece))
    scalars = metrics.scalars()
    assert set(scalars) == {f"{m}/label_{c}" for m in ("ece", "nll", "brier") for c in range(4)} | {
        "mean_ece",
        "mean_nll",
        "mean_brier",
    }


def test_reliability_diagram_draws_one_bar_per_non_empty_bin(tmp_path):
    logits, labels = data.binary()
    metrics = calibration_metrics(logits, labels, label_mode="binary", backend=BACKEND)
    image = metrics.diagram(size=192)
    assert image.shape == (192, 192, 3)
    assert image.dtype == np.uint8
    blue = np.all(image == (66, 133, 244), axis=2)
    bars = np.flatnonzero(np.diff(np.r_[0, blue.any(axis=0).astype(int)]) == 1)
    non_empty = [
        b for b, n in enumerate(metrics.bins[0].count) if n and metrics.bins[0].positive_sum[b]
    ]
    assert len(bars) == len(non_empty)
    red = np.all(image == (219, 68, 55), axis=2)
    counts = metrics.bins[0].count
    assert (np.diff(np.r_[0, red.any(axis=0).astype(int)]) == 1).sum() == (counts > 0).sum()
    # The fullest bin's mark sits at its mean probability (rows run top to bottom).
    b = int(np.argmax(counts))
    column = 12 + int(round((b + 0.5) / 15 * 167))
    mean = metrics.bins[0].probability_sum[b] / counts[b]
    assert abs(np.flatnonzero(red[:, column]).max() - (12 + (1 - mean) * 124)) <= 1
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        assert tf.summary.image("calibration/reliability", image[None], step=0)
    with pytest.raises(ValueError, match="size must be >= 64 pixels; got 16"):
        reliability_diagram(metrics.bins[0], size=16)
