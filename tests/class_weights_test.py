"""label_histogram on one device and on 4 mirrored replicas; weights against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import class_weights as cw
from focal_dist.distribute import get_backend
from tests.distribute import fixtures

BACKENDS = ["default", "mirrored"]


def _backend(name):
    return get_backend(name, num_cpu_devices=4) if name == "mirrored" else get_backend(name)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize(
    ("mode", "num_classes"),
    [("binary", 1), ("multi_label", fixtures.NUM_MULTI_LABEL), ("sparse", fixtures.NUM_SPARSE)],
)
@pytest.mark.parametrize("batch", [None, 1, 64], ids=["unbatched", "batch1", "batch64"])
def test_histogram_equals_numpy_counts(backend_name, mode, num_classes, batch):
    labels = fixtures.labels(mode)
    dataset = tf.data.Dataset.from_tensor_slices((fixtures.features(), labels))
    if batch:
        dataset = dataset.batch(batch)
    histogram = cw.label_histogram(
        dataset, num_classes=num_classes, label_mode=mode, backend=_backend(backend_name)
    )
    assert histogram.counts.dtype == np.int64
    assert histogram.counts.tolist() == fixtures.expected_counts(mode)
    assert histogram.num_examples == fixtures.NUM_EXAMPLES
    if mode == "multi_label":
        np.testing.assert_array_equal(histogram.negatives, (labels == 0).sum(axis=0))


def test_categorical_one_hot_and_float_binary_labels_of_shape_b1():
    ids = fixtures.labels("sparse")
    one_hot = np.eye(fixtures.NUM_SPARSE, dtype=np.float32)[ids]
    dataset = tf.data.Dataset.from_tensor_slices((one_hot, one_hot)).batch(100)
    histogram = cw.label_histogram(dataset, num_classes=7, label_mode="categorical")
    assert histogram.counts.tolist() == fixtures.expected_counts("sparse")
    binary = fixtures.labels("binary").astype(np.float32)[:, None]
    dataset = tf.data.Dataset.from_tensor_slices((binary, binary, binary)).batch(33)
    histogram = cw.label_histogram(dataset, num_classes=1, label_mode="binary")
    assert histogram.counts.tolist() == fixtures.expected_counts("binary")


def _sparse_dataset():
    return tf.data.Dataset.from_tensor_slices((fixtures.features(), fixtures.labels("sparse")))


def test_a_users_own_mirrored_strategy_is_accepted_as_backend():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    histogram = cw.label_histogram(
        _sparse_dataset().batch(50), num_classes=7, label_mode="sparse", backend=strategy
    )
    assert histogram.counts.tolist() == fixtures.expected_counts("sparse")
    with strategy.scope():  # None: the strategy in scope
        again = cw.label_histogram(_sparse_dataset(), num_classes=7, label_mode="sparse")
    assert again.counts.tolist() == fixtures.expected_counts("sparse")


def test_an_already_sharded_dataset_is_refused_rather_than_counted_in_part():
    half = _sparse_dataset().shard(2, 0).batch(64)
    with pytest.raises(ValueError, match=r"already sharded \(shard\(2.*already_sharded=True"):
        cw.label_histogram(half, num_classes=7, label_mode="sparse")
    # Declared, but this backend has one input pipeline: the other half has no counter.
    with pytest.raises(ValueError, match=r"shard\(2, \.\.\.\) while backend .* 1 input pipeline"):
        cw.label_histogram(half, num_classes=7, label_mode="sparse", already_sharded=True)


def test_on_one_pipeline_a_shuffle_without_seed_counts_every_example():
    shuffled = _sparse_dataset().shuffle(10_007).batch(64)
    histogram = cw.label_histogram(shuffled, num_classes=7, label_mode="sparse")
    assert histogram.counts.tolist() == fixtures.expected_counts("sparse")


def test_already_sharded_is_for_datasets_not_dataset_functions():
    with pytest.raises(ValueError, match="already_sharded=True is for a Dataset"):
        cw.label_histogram(
            lambda info: _sparse_dataset(),
            num_classes=7,
            label_mode="sparse",
            already_sharded=True,
        )


def test_dataset_function_receives_the_pipeline_and_label_fn_picks_labels():
    seen = []

    def pipeline(info):
        seen.append(info)
        labels = fixtures.labels("sparse")
        return tf.data.Dataset.from_tensor_slices({"y": labels}).batch(info.per_replica_batch_size)

    histogram = cw.label_histogram(
        pipeline, num_classes=7, label_mode="sparse", label_fn=lambda e: e["y"], batch_size=128
    )
    assert histogram.counts.tolist() == fixtures.expected_counts("sparse")
    assert (seen[0].pipeline_id, seen[0].num_pipelines, seen[0].per_replica_batch_size) == (
        0,
        1,
        128,
    )


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_int64_sum_across_workers_is_exact_past_2_to_the_31(backend_name):
    backend = _backend(backend_name)
    values = tf.constant(fixtures.LARGE_COUNTS, tf.int64)
    assert backend.sum_across_workers(values).numpy().tolist() == fixtures.LARGE_COUNTS
    # The per-replica SUM that multi-replica steps use, with int64 past 2^31.
    per_replica = backend.run(tf.function(lambda: tf.constant(fixtures.LARGE_COUNTS, tf.int64)))
    total = backend.reduce_sum(per_replica).numpy().tolist()
    assert total == [backend.num_replicas_in_sync * c for c in fixtures.LARGE_COUNTS]


@pytest.mark.parametrize(
    ("mode", "num_classes", "labels", "match"),
    [
        ("binary", 1, [0, 1, 2, 0], r"binary labels must be 0 or 1(.|\n)*\[2\]"),
        ("sparse", 7, [0, -1, 3], r"\[0, 7\)(.|\n)*\[-1\]"),
        ("sparse", 7, [0, 7, 3, 9], r"\[0, 7\)(.|\n)*\[7 9\]"),
        ("multi_label", 2, [[0, 1], [3, 0]], r"multi_label labels must be 0 or 1(.|\n)*\[3\]"),
        ("categorical", 2, [[0, 1], [1, 1]], r"one-hot(.|\n)*\[2\]"),
    ],
)
def test_labels_outside_the_declared_classes_raise_naming_the_value(
    mode, num_classes, labels, match
):
    labels = np.array(labels)
    dataset = tf.data.Dataset.from_tensor_slices((labels, labels)).batch(8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        cw.label_histogram(dataset, num_classes=num_classes, label_mode=mode)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(label_mode="ordinal", num_classes=3), r"label_mode.*'ordinal'"),
        (dict(label_mode="binary", num_classes=3), r"num_classes.*binary.*3"),
        (dict(label_mode="sparse", num_classes=1), r"num_classes.*>= 2.*1"),
    ],
)
def test_bad_histogram_arguments(kwargs, match):
    dataset = tf.data.Dataset.from_tensor_slices(([0], [0]))
    with pytest.raises(ValueError, match=match):
        cw.label_histogram(dataset, **kwargs)


def _histogram(mode, counts, n, num_classes):
    return cw.LabelHistogram(np.array(counts, np.int64), n, mode, num_classes)


def _reference_weights(counts, scheme, beta=0.999):
    """Per-group weights written out with a loop, then normalised by sum n w = N."""
    counts = [float(c) for c in counts]
    total, k = sum(counts), len(counts)
    raw = []
    for n in counts:
        raw.append(
            {
                "balanced": total / (k * n),
                "inverse": 1 / n,
                "inverse_sqrt": n**-0.5,
                "effective_number": (1 - beta) / (1 - beta**n),
            }[scheme]
        )
    scale = total / sum(n * w for n, w in zip(counts, raw, strict=True))
    return [w * scale for w in raw]


@pytest.mark.parametrize("scheme", cw.SCHEMES)
def test_sparse_weights_match_the_written_out_formulas(scheme):
    counts = [5000, 300, 20, 1]
    histogram = _histogram("sparse", counts, sum(counts), 4)
    weights = cw.class_weights(histogram, scheme)
    np.testing.assert_allclose(weights, _reference_weights(counts, scheme), rtol=1e-12)
    # Normalised: the example-weighted mean weight is 1.
    np.testing.assert_allclose(np.dot(weights, counts) / sum(counts), 1.0, rtol=1e-12)


def test_balanced_equals_scikit_learns_formula_without_normalisation():
    counts = np.array([900, 90, 10])
    histogram = _histogram("sparse", counts, counts.sum(), 3)
    expected = counts.sum() / (3 * counts)
    np.testing.assert_allclose(cw.class_weights(histogram, normalize=False), expected)
    np.testing.assert_allclose(cw.class_weights(histogram), expected)


@pytest.mark.parametrize("scheme", cw.SCHEMES)
def test_multi_label_weights_are_negative_and_positive_rows_per_output(scheme):
    positives = [10, 250, 4000]
    n = 5000
    histogram = _histogram("multi_label", positives, n, 3)
    weights = cw.class_weights(histogram, scheme)
    assert weights.shape == (2, 3)
    for c, p in enumerate(positives):
        np.testing.assert_allclose(
            weights[:, c], _reference_weights([n - p, p], scheme), rtol=1e-12
        )


def test_binary_weights_plug_into_the_loss_class_weight():
    from focal_dist import losses

    histogram = _histogram("binary", [990, 10], 1000, 1)
    weights = cw.class_weights(histogram)
    assert weights.shape == (2, 1)
    np.testing.assert_allclose(weights[:, 0], [1000 / (2 * 990), 1000 / (2 * 10)])
    y = np.array([[0.0], [1.0]])
    loss = losses.binary_focal_crossentropy(
        y, np.zeros((2, 1)), class_weight=weights, gamma=0, from_logits=True
    )
    np.testing.assert_allclose(loss.numpy(), np.log(2) * weights[:, 0], rtol=1e-6)


def test_empty_class_is_an_error_or_a_finite_min_count_rule():
    histogram = _histogram("sparse", [100, 0, 5], 105, 3)
    with pytest.raises(ValueError, match=r"no examples of class 1.*min_count"):
        cw.class_weights(histogram)
    weights = cw.class_weights(histogram, "effective_number", min_count=1)
    assert np.all(np.isfinite(weights))
    np.testing.assert_allclose(weights, _reference_weights([100, 1, 5], "effective_number"))
    no_positives = _histogram("multi_label", [0, 5], 10, 2)
    with pytest.raises(ValueError, match=r"positives of output 0"):
        cw.class_weights(no_positives)
    with pytest.raises(ValueError, match="focal_alpha needs positives"):
        cw.focal_alpha(_histogram("binary", [10, 0], 10, 1))


def test_focal_alpha_is_the_negative_fraction():
    assert cw.focal_alpha(_histogram("binary", [990, 10], 1000, 1)) == pytest.approx(0.99)
    multi = _histogram("multi_label", [10, 500], 1000, 2)
    np.testing.assert_allclose(cw.focal_alpha(multi, per_output=True), [0.99, 0.5])
    assert cw.focal_alpha(multi) == pytest.approx(1 - 510 / 2000)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(scheme="sqrt"), r"scheme.*'sqrt'"),
        (dict(scheme="effective_number", beta=1.0), r"beta.*\[0, 1\).*1\.0"),
        (dict(min_count=-1), r"min_count.*-1"),
    ],
)
def test_bad_weight_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cw.class_weights(_histogram("sparse", [1, 2], 3, 2), **kwargs)
