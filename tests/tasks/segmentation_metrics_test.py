"""Segmentation metrics against NumPy: the confusion matrix of the valid pixels (ignored
pixels and padding rows left out), summed over two 'replicas', IoU, Dice and pixel
accuracy from it, and the pixel PR-AUC of each foreground class against scikit-learn."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import average_precision_score

from focal_dist.tasks.segmentation import soft_dice_loss
from focal_dist.tasks.segmentation_metrics import SegmentationEvaluation

CLASSES, IGNORE = 4, 255


def _batch(seed, rows=5, size=9):
    rng = np.random.default_rng(seed)
    labels = rng.choice(CLASSES, size=(rows, size, size), p=[0.85, 0.08, 0.05, 0.02])
    labels[rng.random(labels.shape) < 0.2] = IGNORE
    logits = rng.normal(size=(rows, size, size, CLASSES)).astype(np.float32)
    logits[..., 0] += 1.0
    valid = np.array([1, 1, 1, 0, 0][:rows], np.float32)  # two padding rows
    return labels.astype(np.int64), logits, valid


def _numpy_confusion(batches):
    matrix = np.zeros((CLASSES, CLASSES), np.int64)
    for labels, logits, valid in batches:
        keep = (labels != IGNORE) & (valid[:, None, None] > 0)
        np.add.at(matrix, (labels[keep], logits.argmax(-1)[keep]), 1)
    return matrix


@pytest.fixture(scope="module")
def evaluated():
    evaluation = SegmentationEvaluation(CLASSES, IGNORE)
    batches = [_batch(1), _batch(2)]
    totals = sum(
        evaluation.statistics(tf.constant(y), tf.constant(z), tf.constant(v)).numpy()
        for y, z, v in batches
    ).astype(np.float64)
    return evaluation, batches, totals, evaluation.metrics(totals)


def test_the_summed_confusion_matrix_is_numpy_over_valid_pixels_of_real_rows(evaluated):
    evaluation, batches, totals, _ = evaluated
    np.testing.assert_array_equal(evaluation._split(totals)[0], _numpy_confusion(batches))


def test_iou_dice_and_pixel_accuracy_follow_from_the_confusion_matrix(evaluated):
    _, batches, _, metrics = evaluated
    matrix = _numpy_confusion(batches).astype(np.float64)
    tp = np.diag(matrix)
    fp, fn = matrix.sum(0) - tp, matrix.sum(1) - tp
    np.testing.assert_allclose(metrics["iou"], tp / (tp + fp + fn))
    np.testing.assert_allclose(metrics["dice"], 2 * tp / (2 * tp + fp + fn))
    assert metrics["miou"] == pytest.approx(np.mean(tp / (tp + fp + fn)))
    assert metrics["pixel_accuracy"] == pytest.approx(tp.sum() / matrix.sum())
    assert metrics["num_pixels"] == matrix.sum()
    for c in range(CLASSES):
        assert metrics[f"iou/class_{c}"] == metrics["iou"][c]


def test_pixel_pr_auc_of_each_foreground_class_matches_scikit_learn(evaluated):
    _, batches, _, metrics = evaluated
    probabilities, targets = [], []
    for labels, logits, valid in batches:
        keep = (labels != IGNORE) & (valid[:, None, None] > 0)
        softmax = tf.nn.softmax(logits).numpy()
        probabilities.append(softmax[keep])
        targets.append(labels[keep])
    probabilities, targets = np.concatenate(probabilities), np.concatenate(targets)
    for c in range(1, CLASSES):
        expected = average_precision_score(targets == c, probabilities[:, c])
        # Scores are bucketed in steps of 1/1000: ties within a bucket shift AP a little.
        assert metrics[f"pr_auc/class_{c}"] == pytest.approx(expected, abs=0.01)
    assert "pr_auc/class_0" not in metrics


def test_a_class_absent_from_labels_and_predictions_has_no_iou_and_is_left_out_of_the_mean():
    evaluation = SegmentationEvaluation(3, IGNORE)
    labels = np.zeros((1, 4, 4), np.int64)
    labels[0, 0, :2] = 1
    logits = np.zeros((1, 4, 4, 3), np.float32)
    logits[..., 0] = 5.0
    logits[0, 0, :2, 1] = 9.0
    totals = evaluation.statistics(labels, logits, np.ones(1, np.float32)).numpy()
    metrics = evaluation.metrics(totals)
    assert np.isnan(metrics["iou"][2])
    assert metrics["iou"][:2] == [1.0, 1.0]
    assert metrics["miou"] == 1.0


def test_the_picture_shows_input_truth_and_prediction_side_by_side():
    evaluation = SegmentationEvaluation(CLASSES, IGNORE, num_images=2)
    labels, logits, _ = _batch(3, rows=2, size=6)
    features = np.random.default_rng(0).random((2, 6, 6, 1)).astype(np.float32)
    pictures = evaluation.pictures(features, labels, logits)
    assert pictures.shape == (2, 6, 18, 3)
    assert pictures.dtype == np.uint8
    np.testing.assert_array_equal(pictures[..., :6, 0], np.uint8(features[..., 0] * 255))
    np.testing.assert_array_equal(pictures[:, :, 6:12][labels == IGNORE], 128)  # truth: grey


def test_soft_dice_is_monais_per_image_mean_over_classes():
    labels, logits, _ = _batch(4, rows=3, size=5)
    ours = soft_dice_loss(tf.constant(labels), tf.constant(logits), ignore_label=IGNORE).numpy()
    for i in range(3):
        valid = (labels[i] != IGNORE)[..., None]
        p = tf.nn.softmax(logits[i]).numpy().astype(np.float64) * valid
        t = np.eye(CLASSES)[np.where(valid[..., 0], labels[i], 0)] * valid
        dice = (2 * (p * t).sum((0, 1)) + 1e-5) / ((p + t).sum((0, 1)) + 1e-5)
        assert ours[i] == pytest.approx(np.mean(1 - dice), rel=1e-5)
