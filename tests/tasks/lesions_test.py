"""Lesion counts, size histograms and metrics against a NumPy/SciPy reference."""

import functools

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from focal_dist.tasks import components, lesions

EIGHT = np.ones((3, 3), int)
IGNORE = 255


def _reference(truth, prediction, num_classes, ignore_label=None, num_sizes=256):
    """(counts [K-1, 6], histograms [K-1, 3, S]) written from SciPy's components."""
    valid = np.ones(truth.shape, bool) if ignore_label is None else truth != ignore_label
    counts, histograms = [], []
    for c in range(1, num_classes):
        true_labels, num_true = ndimage.label(truth == c, structure=EIGHT)
        predicted_labels, num_predicted = ndimage.label(prediction == c, structure=EIGHT)
        predicted_sizes = np.bincount(predicted_labels.ravel(), minlength=num_predicted + 1)
        histogram = np.zeros((3, num_sizes), int)
        detected = 0
        for t in range(1, num_true + 1):
            touching = np.unique(predicted_labels[(true_labels == t) & (prediction == c)])
            largest = max((predicted_sizes[q] for q in touching if q), default=0)
            detected += largest > 0
            histogram[0, min(largest, num_sizes - 1)] += 1
        counted = touching_true = 0
        for q in range(1, num_predicted + 1):
            pixels = predicted_labels == q
            if not valid[pixels].any():
                continue  # wholly on ignored pixels: not counted
            counted += 1
            touches = bool((truth[pixels] == c).any())
            touching_true += touches
            histogram[1 if touches else 2, min(predicted_sizes[q], num_sizes - 1)] += 1
        counts.append([num_true, detected, counted, touching_true, counted - touching_true, 1])
        histograms.append(histogram)
    return np.array(counts), np.array(histograms)


def _blobs(rng, shape, num_classes, count, radius):
    """Class ids: `count` discs of random classes and radii up to `radius`."""
    mask = np.zeros(shape, np.int64)
    side = int(np.ceil(radius))
    dy, dx = np.indices((2 * side + 1, 2 * side + 1)) - side
    for _ in range(count):
        y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        r = rng.uniform(0.5, radius)
        inside = dy**2 + dx**2 <= r * r
        rows, cols = y + dy[inside], x + dx[inside]
        keep = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
        mask[rows[keep], cols[keep]] = rng.integers(1, num_classes)
    return mask


@functools.lru_cache(maxsize=1)
def _pairs():
    rng = np.random.default_rng(0)
    truth = _blobs(rng, (80, 96), 3, 25, 5)
    noisy = np.where(rng.uniform(size=truth.shape) < 0.03, rng.integers(0, 3, truth.shape), truth)
    shifted = np.roll(truth, (2, -3), axis=(0, 1))
    with_ignored = truth.copy()
    with_ignored[:, :20] = IGNORE
    diagonal = np.zeros((5, 5), np.int64)
    diagonal[[0, 1, 2], [0, 1, 2]] = 1  # one component touching only diagonally
    return {
        "noisy": (truth, noisy, None),
        "shifted": (truth, shifted, None),
        "ignored_band": (with_ignored, noisy, IGNORE),
        "empty_truth": (np.zeros_like(truth), noisy, None),
        "empty_both": (np.zeros((9, 7), np.int64), np.zeros((9, 7), np.int64), None),
        "one_giant": (np.ones((40, 50), np.int64), np.ones((40, 50), np.int64), None),
        "diagonal": (diagonal, diagonal.T[::-1], None),
        "1000x700": (
            _blobs(rng, (1000, 700), 3, 300, 8),
            _blobs(rng, (1000, 700), 3, 400, 6),
            None,
        ),
    }


@pytest.mark.parametrize(("name", "pair"), list(_pairs().items()))
def test_counts_and_histograms_match_scipy(name, pair):
    truth, prediction, ignore_label = pair
    expected_counts, expected_histograms = _reference(truth, prediction, 3, ignore_label)
    counts = lesions.lesion_counts(truth, prediction, num_classes=3, ignore_label=ignore_label)
    np.testing.assert_array_equal(counts.numpy(), expected_counts)
    histograms = lesions.lesion_histograms(
        truth, prediction, num_classes=3, ignore_label=ignore_label
    )
    np.testing.assert_array_equal(histograms.numpy(), expected_histograms)


def test_batch_gives_one_row_per_image_and_histograms_sum_over_images():
    pairs = [pair for pair in _pairs().values() if pair[0].shape == (80, 96)]
    truth = np.stack([t for t, _, _ in pairs])
    prediction = np.stack([p for _, p, _ in pairs])
    counts = lesions.lesion_counts(truth, prediction, num_classes=3).numpy()
    assert counts.shape == (len(pairs), 2, 6)
    histograms = lesions.lesion_histograms(truth, prediction, num_classes=3, num_sizes=16)
    for i, (t, p, _) in enumerate(pairs):
        np.testing.assert_array_equal(counts[i], _reference(t, p, 3)[0])
    expected = sum(_reference(t, p, 3, num_sizes=16)[1] for t, p, _ in pairs)
    np.testing.assert_array_equal(histograms.numpy(), expected)


@pytest.mark.parametrize("min_pixels", [1, 2, 5, 12, 15])
def test_counts_at_a_minimum_size_equal_counts_after_removing_small_components(min_pixels):
    """The histograms give, for every m, what dropping predicted components under m
    pixels and counting again gives."""
    truth, prediction, _ = _pairs()["noisy"]
    histograms = lesions.lesion_histograms(truth, prediction, num_classes=3, num_sizes=16)
    kept = components.remove_small_components(prediction, min_pixels, 3)
    expected = lesions.lesion_counts(truth, kept, num_classes=3).numpy()
    np.testing.assert_array_equal(lesions.counts_at(histograms, min_pixels, 1), expected)
    with pytest.raises(ValueError, match=r"min_pixels must be in \[1, 15\]"):
        lesions.counts_at(histograms, 16, 1)


def test_metrics_from_summed_counts():
    sums = np.array([[10, 8, 20, 15, 5, 4], [0, 0, 0, 0, 0, 4]])
    first, second = lesions.lesion_metrics(sums)
    assert first["recall"] == 0.8
    assert first["precision"] == 0.75
    assert first["fp_per_image"] == 1.25
    assert np.isnan(second["recall"])
    assert np.isnan(second["precision"])
    assert second["fp_per_image"] == 0.0


def test_counts_in_a_tf_function_of_any_image_size():
    count = tf.function(
        lambda t, p: lesions.lesion_counts(t, p, num_classes=3, ignore_label=IGNORE),
        input_signature=[tf.TensorSpec([None, None], tf.int64)] * 2,
    )
    for truth, prediction, _ in list(_pairs().values())[:4]:
        expected, _ = _reference(truth, prediction, 3, IGNORE)
        np.testing.assert_array_equal(count(truth, prediction).numpy(), expected)
