"""fit_calibration in one process: against scikit-learn's Platt fit, an independent
SciPy fit of temperature and bias, known miscalibrations, and its documented rules."""

import json

import numpy as np
import pytest
import tensorflow as tf
from scipy import optimize, special
from sklearn.calibration import _sigmoid_calibration

from focal_dist.distribute import get_backend
from focal_dist.serving import Calibration, fit_calibration
from tests.serving import data

BACKEND = get_backend("default")


def _fit(logits, labels, label_mode, **options):
    return fit_calibration(logits, labels, label_mode=label_mode, backend=BACKEND, **options)


@pytest.mark.parametrize(
    ("label_mode", "split"), [("binary", data.binary), ("multi_label", data.multi_label)]
)
def test_platt_per_output_equals_scikit_learns_sigmoid_calibration(label_mode, split):
    logits, labels = split()
    calibration = _fit(logits, labels, label_mode)
    assert calibration.method == "platt"
    for c in range(logits.shape[1]):
        a, b = _sigmoid_calibration(logits[:, c].astype(np.float64), labels[:, c])
        # scikit-learn's p = expit(-(a z + b)); its L-BFGS stops at gtol 1e-6.
        np.testing.assert_allclose(calibration.scale[c], -a, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(calibration.offset[c], -b, rtol=1e-6, atol=1e-7)


def _reference_temperature(logits, labels):
    """Minimises the smoothed-target NLL over (1/T, bias) with SciPy's BFGS."""
    n, k = logits.shape
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    targets = np.empty((n, k))
    for i, y in enumerate(labels):
        targets[i] = 1 / (counts[y] + k)
        targets[i, y] = (counts[y] + 1) / (counts[y] + k)
    z = logits.astype(np.float64)

    def objective(theta):
        logits_ = theta[0] * z + theta[1:]
        return np.mean(special.logsumexp(logits_, axis=1) - np.sum(targets * logits_, axis=1))

    result = optimize.minimize(
        objective, np.r_[1.0, np.zeros(k)], method="BFGS", options={"gtol": 1e-11}
    )
    return result.x[0], result.x[1:] - result.x[1:].mean()


def test_temperature_and_bias_equal_an_independent_scipy_fit():
    logits, labels = data.sparse()
    calibration = _fit(logits, labels, "sparse")
    beta, bias = _reference_temperature(logits, labels)
    assert calibration.method == "temperature"
    np.testing.assert_allclose(1 / calibration.temperature, beta, rtol=1e-6)
    np.testing.assert_allclose(calibration.offset, bias, atol=1e-6)
    assert abs(sum(calibration.offset)) < 1e-9  # the centred representative


def test_platt_recovers_a_known_miscalibration():
    logits, labels = data.binary(n=200_000)  # z = 2u + 1.5: the fit is u = 0.5 z - 0.75
    calibration = _fit(logits, labels, "binary")
    np.testing.assert_allclose(calibration.scale, [0.5], atol=0.02)
    np.testing.assert_allclose(calibration.offset, [-0.75], atol=0.05)


def test_temperature_recovers_a_known_temperature():
    logits, labels = data.sparse(n=100_000)  # z = 3u + c
    np.testing.assert_allclose(_fit(logits, labels, "sparse").temperature, 3.0, rtol=0.03)


def test_calibrated_mean_probability_is_the_mean_smoothed_target():
    logits, labels = data.binary()
    calibration = _fit(logits, labels, "binary")
    positives, n = labels.sum(), len(labels)
    mean_target = (
        positives * (positives + 1) / (positives + 2) + (n - positives) / (n - positives + 2)
    ) / n
    np.testing.assert_allclose(calibration.apply_numpy(logits).mean(), mean_target, rtol=1e-9)
    assert abs(mean_target - positives / n) < 1 / n


def test_a_separated_split_still_gets_a_finite_fit():
    labels = (np.arange(1000) < 30).astype(np.float64)[:, None]
    logits = np.where(labels > 0, 4.0, -4.0) + np.linspace(-1, 1, 1000)[:, None]
    calibration = _fit(logits, labels, "binary")
    probabilities = calibration.apply_numpy(logits)
    assert np.all(np.isfinite(calibration.scale + calibration.offset))
    assert probabilities[labels > 0].min() > 0.9
    assert probabilities.max() < 1
    sparse_labels = np.arange(600) % 3
    calibrated = _fit(np.eye(3)[sparse_labels] * 5.0, sparse_labels, "sparse")
    assert np.isfinite(calibrated.temperature)
    assert calibrated.temperature > 0


def test_constant_logits_fit_the_base_rate():
    labels = (np.arange(100) < 10).astype(np.float64)[:, None]
    calibration = _fit(np.zeros((100, 1)), labels, "binary")
    mean_target = (10 * 11 / 12 + 90 / 92) / 100
    np.testing.assert_allclose(
        calibration.apply_numpy(np.zeros((1, 1))), [[mean_target]], rtol=1e-9
    )


def test_method_none_is_the_models_own_sigmoid_and_softmax():
    logits, labels = data.binary()
    identity = _fit(logits, labels, "binary", method="none")
    np.testing.assert_allclose(
        identity.apply_numpy(logits), 1 / (1 + np.exp(-logits.astype(np.float64)))
    )
    logits, labels = data.sparse()
    identity = _fit(logits, labels, "sparse", method="none")
    np.testing.assert_allclose(
        identity.apply_numpy(logits), special.softmax(logits.astype(np.float64), axis=1)
    )
    assert identity == Calibration.identity(label_mode="sparse", num_outputs=data.NUM_CLASSES)


def test_deploy_rate_shifts_the_calibrated_log_odds_by_the_prevalence_difference():
    logits, labels = data.multi_label()
    plain = _fit(logits, labels, "multi_label")
    rates = [0.01, 0.05, 0.3, 0.5]
    shifted = _fit(logits, labels, "multi_label", deploy_positive_rate=rates)
    prior = labels.mean(axis=0)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    expected = plain.logits_numpy(logits) + logit(np.array(rates)) - logit(prior)
    np.testing.assert_allclose(shifted.logits_numpy(logits), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(shifted.calibration_prior, prior)
    same = _fit(logits, labels, "multi_label", deploy_positive_rate=prior)
    np.testing.assert_allclose(same.shift, 0, atol=1e-12)
    weights = shifted.prevalence_weights()
    np.testing.assert_allclose(weights[1] * prior, rates)
    np.testing.assert_allclose(weights[0] * (1 - prior), 1 - np.array(rates))


def test_a_class_prior_shifts_the_softmax_by_log_prior_ratios():
    logits, labels = data.sparse()
    plain = _fit(logits, labels, "sparse")
    prior = np.bincount(labels, minlength=data.NUM_CLASSES) / len(labels)
    deploy = np.full(data.NUM_CLASSES, 1 / data.NUM_CLASSES)
    shifted = _fit(logits, labels, "sparse", deploy_positive_rate=deploy)
    expected = plain.apply_numpy(logits) * deploy / prior
    np.testing.assert_allclose(
        shifted.apply_numpy(logits), expected / expected.sum(1, keepdims=True), rtol=1e-9
    )


def test_apply_tf_is_apply_numpy_and_to_dict_round_trips_through_json():
    logits, labels = data.multi_label()
    calibration = _fit(logits, labels, "multi_label", deploy_positive_rate=0.02)
    np.testing.assert_allclose(
        calibration.apply_tf(tf.constant(logits)).numpy(),
        calibration.apply_numpy(logits),
        atol=1e-6,
    )
    assert Calibration.from_dict(json.loads(json.dumps(calibration.to_dict()))) == calibration
    with pytest.raises(ValueError, match=r"no field\(s\) \['slope'\]"):
        Calibration.from_dict({**calibration.to_dict(), "slope": [1.0]})


@pytest.mark.parametrize(
    ("label_mode", "logits", "labels", "options", "message"),
    [
        (
            "binary",
            np.zeros((4, 1)),
            np.zeros((4, 1)),
            {"method": "isotonic"},
            "calibration.method must be one of auto, platt, temperature, none; got 'isotonic'",
        ),
        (
            "sparse",
            np.zeros((4, 3)),
            np.zeros(4),
            {"method": "platt"},
            "'platt' does not apply to sparse labels; use auto, temperature or none",
        ),
        (
            "binary",
            np.zeros((4, 1)),
            np.zeros((4, 1)),
            {"method": "none", "deploy_positive_rate": 0.1},
            "needs a fitted calibration",
        ),
        (
            "binary",
            np.zeros((4, 1)),
            np.array([[0], [1], [0], [1]]),
            {"deploy_positive_rate": 1.5},
            r"must lie in \(0, 1\); got 1.5",
        ),
        (
            "multi_label",
            np.zeros((4, 2)),
            np.array([[0, 0], [1, 0], [0, 1], [1, 1]]),
            {"deploy_positive_rate": [0.1, 0.2, 0.3]},
            r"needs 2 finite value\(s\)",
        ),
        (
            "binary",
            np.zeros((4, 1)),
            np.zeros((4, 1)),
            {"deploy_positive_rate": 0.1},
            "output 0 has positive rate 0.0",
        ),
        (
            "sparse",
            np.zeros((4, 3)),
            np.array([0, 1, 0, 1]),
            {"deploy_positive_rate": [0.2, 0.3, 0.5]},
            "class 2 has no example",
        ),
        (
            "sparse",
            np.zeros((4, 3)),
            np.array([0, 1, 2, 1]),
            {"deploy_positive_rate": [0.2, 0.3, 0.4]},
            "sum to 1",
        ),
        (
            "binary",
            np.array([[0.0], [np.nan]]),
            np.zeros((2, 1)),
            {},
            r"worker 0: logits must be finite; local row 1 is \[nan\]",
        ),
        ("binary", np.zeros((3, 1)), np.array([[0], [2], [1]]), {}, "binary labels must be 0 or 1"),
        (
            "multi_label",
            np.zeros((3, 2)),
            np.zeros((3, 3)),
            {},
            r"must have the shape of logits, \(3, 2\); got \(3, 3\)",
        ),
        ("sparse", np.zeros((3, 2)), np.array([0, 2, 1]), {}, r"ids in \[0, 2\)"),
        ("binary", np.zeros((0, 1)), np.zeros((0, 1)), {}, "the split is empty"),
        (
            "binary",
            np.zeros((3, 2)),
            np.zeros((3, 2)),
            {},
            r"binary logits must have shape \[n, 1\]",
        ),
        (
            "ordinal",
            np.zeros((3, 1)),
            np.zeros((3, 1)),
            {},
            "label_mode must be one of binary, multi_label, sparse; got 'ordinal'",
        ),
    ],
)
def test_bad_arguments_are_refused_naming_the_value(label_mode, logits, labels, options, message):
    with pytest.raises(ValueError, match=message):
        _fit(logits, labels, label_mode, **options)
