"""BatchNormalization in the step: padding rows never enter the batch statistics, and a
synchronized layer on 4 mirrored replicas computes one device's statistics of the global
batch, with a short last batch that leaves replicas empty."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from focal_dist import losses
from focal_dist.data import pipeline
from focal_dist.distribute import get_backend
from focal_dist.models import batch_norm
from focal_dist.tasks import LossTerm
from focal_dist.tasks.bucket_metrics import BucketEvaluation
from focal_dist.training.step import StepOptions, TrainStep

GLOBAL_BATCH = 8
NUM_EXAMPLES = 2 * GLOBAL_BATCH + 3  # the short last batch gives 4 replicas 2, 1, 0, 0
SIZE = 6


def _examples():
    rng = np.random.default_rng(11)
    images = rng.normal(1.5, 2.0, size=(NUM_EXAMPLES, SIZE, SIZE, 2)).astype(np.float32)
    labels = (rng.random(NUM_EXAMPLES) < 0.3).astype(np.float32)[:, None]
    return images, labels


def _model(synchronized):
    init = keras.initializers.GlorotUniform(seed=5)
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 2)),
            keras.layers.Conv2D(3, 3, padding="same", kernel_initializer=init),
            keras.layers.BatchNormalization(momentum=0.5, synchronized=synchronized),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, kernel_initializer=init),
        ]
    )


def _loss(labels, logits):
    return losses.binary_focal_crossentropy(labels, logits, gamma=2.0, from_logits=True)


def _train(backend, *, steps, synchronized=True, pad=True, examples=None):
    images, labels = examples or _examples()
    with backend.scope():
        model = _model(synchronized)
        optimizer = keras.optimizers.SGD(0.3)
        optimizer.build(model.trainable_variables)
    backend.prepare_optimizer(optimizer)
    per_replica = GLOBAL_BATCH // backend.num_replicas_in_sync
    step = TrainStep(
        model=model,
        optimizer=optimizer,
        backend=backend,
        loss_terms=(LossTerm("loss", _loss),),
        evaluation=BucketEvaluation(1, lambda y, z: (tf.sigmoid(z), y)),
        options=StepOptions(
            per_replica_batch_size=per_replica if pad else None,
            allreduce="overlap",
            bucket_bytes=1,
        ),
    )

    def dataset_fn(info):
        examples = tf.data.Dataset.from_tensor_slices((images, labels))
        return pipeline.split_global_batches(examples, info, global_batch_size=GLOBAL_BATCH)

    iterator = iter(backend.distribute_dataset(dataset_fn, GLOBAL_BATCH))
    step_losses, _ = step.train_loop(iterator, tf.constant(steps))
    layer = batch_norm.batch_norm_layers(model)[0]
    moving = [layer.moving_mean.numpy(), layer.moving_variance.numpy()]
    return step_losses.numpy(), [v.numpy() for v in model.trainable_variables], moving, model


def test_padding_rows_leave_the_moving_statistics_those_of_the_real_rows():
    # The epoch's third global batch has 3 real rows, padded to 8 on one device.
    images, labels = _examples()
    _, _, moving, model = _train(get_backend("default"), steps=3)
    # Reference: the same three steps, step 3's batch alone, unpadded (no padding rows).
    reference = _model(False)
    reference.set_weights(_train(get_backend("default"), steps=2)[3].get_weights())
    conv = keras.Model(reference.inputs, reference.layers[0].output)
    features = conv(images[2 * GLOBAL_BATCH :]).numpy().astype(np.float64)
    layer = batch_norm.batch_norm_layers(reference)[0]
    mean, variance = features.mean(axis=(0, 1, 2)), features.var(axis=(0, 1, 2))
    expected_mean = 0.5 * layer.moving_mean.numpy() + 0.5 * mean
    expected_variance = 0.5 * layer.moving_variance.numpy() + 0.5 * variance
    np.testing.assert_allclose(moving[0], expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(moving[1], expected_variance, rtol=1e-5, atol=1e-6)
    del model


def test_padded_and_unpadded_steps_train_the_same_weights():
    padded = _train(get_backend("default"), steps=3, pad=True)
    unpadded = _train(get_backend("default"), steps=3, pad=False)
    np.testing.assert_allclose(padded[0], unpadded[0], rtol=1e-6)
    for ours, reference in zip(padded[1] + padded[2], unpadded[1] + unpadded[2], strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def one_device():
    return _train(get_backend("default"), steps=6)


def test_synchronized_layers_on_four_replicas_match_one_device(one_device):
    ours = _train(get_backend("mirrored", num_cpu_devices=4), steps=6)
    np.testing.assert_allclose(ours[0], one_device[0], rtol=1e-5)
    for a, b in zip(ours[1] + ours[2], one_device[1] + one_device[2], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert one_device[0][-1] != one_device[0][0]


def test_unsynchronized_layers_on_four_replicas_use_each_replica_rows(one_device):
    # Without synchronisation each replica normalises by its own 2 rows: not one device.
    ours = _train(get_backend("mirrored", num_cpu_devices=4), steps=6, synchronized=False)
    assert np.all(np.isfinite(ours[2][0]))
    assert np.all(np.isfinite(ours[2][1]))
    assert np.abs(ours[2][0] - one_device[2][0]).max() > 1e-3


def test_outside_the_step_a_layer_is_keras_own():
    model = _model(False)
    batch_norm.install(model)
    images, _ = _examples()
    layer = batch_norm.batch_norm_layers(model)[0]
    model(images[:4], training=True)
    conv = model.layers[0](images[:4]).numpy().astype(np.float64)
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), 0.5 * conv.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6
    )


def test_synchronize_marks_every_nested_layer():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.BatchNormalization()])
    assert batch_norm.synchronize(outer) == 2
    assert all(layer.synchronized for layer in batch_norm.batch_norm_layers(outer))
