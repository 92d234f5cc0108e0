"""Dense outputs on several replicas: a RetinaNet-style normaliser and per-pixel focal loss.

Two MirroredStrategy replicas (logical CPUs) hold very different numbers of positive
anchors or valid pixels; the loss and gradient they produce together must be the
single-device ones (and NumPy's float64 reference for the per-pixel loss).
"""

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import losses as fl
from tests.losses import numpy_reference as ref

ANCHORS, CLASSES = 30, 3


def _mirrored():
    return tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


def _detection_data(positives_per_image):
    """Per-anchor features and multi-label targets; image i has positives_per_image[i]."""
    rng = np.random.default_rng(8)
    features = rng.normal(size=(len(positives_per_image), ANCHORS, 4)).astype("f4")
    targets = np.zeros((len(positives_per_image), ANCHORS, CLASSES), "f4")
    for image, count in enumerate(positives_per_image):
        anchors = rng.choice(ANCHORS, count, replace=False)
        targets[image, anchors, rng.integers(0, CLASSES, count)] = 1.0
    return features, targets


KERNEL = np.random.default_rng(9).normal(size=(4, CLASSES)).astype("f4")


def _retinanet_loss(kernel, features, targets, **normalizer_kwargs):
    """Focal loss summed over anchors and classes / the number of positive anchors."""
    logits = tf.einsum("bak,kc->bac", features, kernel)
    per_anchor = CLASSES * fl.binary_focal_crossentropy(
        targets, logits, gamma=2.0, alpha=0.25, apply_class_balancing=True, from_logits=True
    )
    positives = tf.reduce_sum(tf.reduce_max(targets, axis=-1))
    return fl.compute_global_loss(per_anchor, normalizer=positives, **normalizer_kwargs)


def _single_device(features, targets, **kwargs):
    kernel = tf.Variable(KERNEL)
    with tf.GradientTape() as tape:
        loss = _retinanet_loss(kernel, features, targets, **kwargs)
    return loss.numpy(), tape.gradient(loss, kernel).numpy()


def _two_replicas(features, targets, **kwargs):
    """Replica 0 takes the first image(s), replica 1 the rest; loss and gradient summed."""
    strategy = _mirrored()
    half = len(features) // 2
    parts = [(features[:half], targets[:half]), (features[half:], targets[half:])]
    with strategy.scope():
        kernel = tf.Variable(KERNEL)
    inputs = strategy.experimental_distribute_values_from_function(
        lambda context: tuple(map(tf.constant, parts[context.replica_id_in_sync_group]))
    )

    @tf.function
    def step(inputs):
        def replica(features, targets):
            with tf.GradientTape() as tape:
                loss = _retinanet_loss(kernel, features, targets, **kwargs)
            return loss, tape.gradient(loss, kernel)

        return strategy.run(replica, args=inputs)

    loss, gradient = step(inputs)
    total = strategy.reduce("SUM", loss, axis=None)
    return total.numpy(), strategy.reduce("SUM", gradient, axis=None).numpy()


@pytest.mark.parametrize(
    ("positives", "floor"),
    [([1, 3, 14, 11], None), ([1, 0, 17, 9], 1.0), ([0, 0, 0, 0], 1.0)],
    ids=["4-vs-25-positives", "floor-1", "no-positives-floor-1"],
)
def test_normalizer_is_all_reduced_so_two_replicas_give_the_single_device_loss_and_gradient(
    positives, floor
):
    features, targets = _detection_data(positives)
    kwargs = {} if floor is None else {"normalizer_floor": floor}
    single_loss, single_gradient = _single_device(features, targets, **kwargs)
    loss, gradient = _two_replicas(features, targets, **kwargs)
    np.testing.assert_allclose(loss, single_loss, rtol=1e-6)
    np.testing.assert_allclose(gradient, single_gradient, rtol=1e-5, atol=1e-7)
    assert np.abs(single_gradient).max() > 1e-3
    # The denominator one device sees: max(sum of positive anchors, floor).
    logits = np.einsum("bak,kc->bac", features, KERNEL)
    per_element = ref.binary_focal(targets, logits, gamma=2.0, balance=True, from_logits=True)
    expected = CLASSES * per_element.sum() / max(sum(positives), floor or 0)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_a_per_replica_floor_would_change_the_loss_so_the_floor_is_global():
    features, targets = _detection_data([0, 0, 5, 6])
    global_floor, _ = _two_replicas(features, targets, normalizer_floor=1.0)
    single, _ = _single_device(features, targets, normalizer_floor=1.0)
    np.testing.assert_allclose(global_floor, single, rtol=1e-6)
    # What dividing by each replica's own max(n_r, 1) would give: replica 0 has none.
    logits = np.einsum("bak,kc->bac", features, KERNEL)
    per_anchor = CLASSES * ref.binary_focal(
        targets, logits, gamma=2.0, balance=True, from_logits=True
    )
    per_replica = per_anchor[:2].sum() / 1 + per_anchor[2:].sum() / 11
    assert abs(per_replica - single) > 0.1 * single


def test_normalizer_arguments_are_checked():
    with pytest.raises(ValueError, match=r"either global_batch_size.*or normalizer"):
        fl.compute_global_loss(np.ones(3, "f4"), global_batch_size=3, normalizer=2)
    with pytest.raises(ValueError, match=r"normalizer_floor=1.*needs normalizer"):
        fl.compute_global_loss(np.ones(3, "f4"), normalizer_floor=1)
    with pytest.raises(ValueError, match=r"normalizer must be >= 0, got -2"):
        fl.compute_global_loss(np.ones(3, "f4"), normalizer=-2)
    with pytest.raises(ValueError, match=r"normalizer must be a scalar.*\(2,\)"):
        fl.compute_global_loss(np.ones(3, "f4"), normalizer=tf.constant([1.0, 2.0]))
    np.testing.assert_allclose(fl.compute_global_loss(np.ones(3, "f4"), normalizer=2).numpy(), 1.5)


# --- per-pixel focal loss for segmentation ---------------------------------------------

IGNORE = 255


def _segmentation(seed=10):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, (4, 6, 5))
    # Image 0-1 (replica 0) mostly void, image 2-3 (replica 1) hardly any.
    void_rate = np.array([0.9, 0.8, 0.1, 0.0])[:, None, None]
    labels[rng.random(labels.shape) < void_rate] = IGNORE
    logits = rng.normal(size=(4, 6, 5, 4)).astype("f4")
    logits *= np.array([0.3, 0.3, 3.0, 3.0], "f4")[:, None, None, None]  # unsure, then sure
    return labels, logits


@pytest.mark.parametrize("via", ["function_and_mask", "class_reduction_none"])
def test_per_pixel_focal_with_ignore_class_on_two_replicas_is_the_numpy_mean_over_valid_pixels(
    via,
):
    labels, logits = _segmentation()
    kwargs = dict(gamma=2.0, alpha=[0.25, 0.5, 0.75, 1.0], from_logits=True)
    per_pixel = ref.sparse_focal(labels, logits, ignore_class=IGNORE, **kwargs)
    expected = per_pixel[labels != IGNORE].mean()  # float64, one device

    def replica_loss(labels, logits):
        if via == "function_and_mask":
            per_pixel = fl.sparse_categorical_focal_crossentropy(
                labels, logits, ignore_class=IGNORE, **kwargs
            )
            return fl.compute_global_loss(per_pixel, mask=labels != IGNORE)
        loss_fn = fl.SparseCategoricalFocalCrossentropy(
            ignore_class=IGNORE, reduction="none", **kwargs
        )
        return fl.compute_global_loss(loss_fn(labels, logits))  # the Keras mask is counted

    strategy = _mirrored()
    parts = [(labels[:2], logits[:2]), (labels[2:], logits[2:])]
    inputs = strategy.experimental_distribute_values_from_function(
        lambda context: tuple(map(tf.constant, parts[context.replica_id_in_sync_group]))
    )
    total = strategy.reduce(
        "SUM", tf.function(lambda i: strategy.run(replica_loss, args=i))(inputs), axis=None
    )
    np.testing.assert_allclose(total.numpy(), expected, rtol=1e-5)
    # Each replica's own mean, averaged, is another number: the global count matters.
    local_means = [
        per_pixel[:2][labels[:2] != IGNORE].mean(),
        per_pixel[2:][labels[2:] != IGNORE].mean(),
    ]
    assert abs(np.mean(local_means) - expected) > 0.05 * expected
