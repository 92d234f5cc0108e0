"""One step's update against the plain loop a user would write, not against itself.

The reference, written here: a `tf.GradientTape` over the whole global batch on one
device, loss = mean of the per-example focal losses + the model's L2 penalty, and SGD
w <- w - lr * grad. The product's step must land on the same weights for both ways of
summing a step (`single` and `overlap`), on one device and on 4 replicas, through three
full global batches of 16 and a short one of 5 (the replicas then get 4, 1, 0 and 0).
A scaling error shared by the one-device and N-replica paths fails here.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from focal_dist import losses
from focal_dist.data import pipeline
from focal_dist.distribute import get_backend
from focal_dist.tasks import LossTerm
from focal_dist.tasks.bucket_metrics import BucketEvaluation
from focal_dist.training.step import StepOptions, TrainStep

GLOBAL_BATCH, NUM_EXAMPLES, LEARNING_RATE, L2 = 16, 53, 0.5, 0.01


def _data():
    rng = np.random.default_rng(11)
    features = rng.normal(size=(NUM_EXAMPLES, 5)).astype(np.float32)
    labels = (rng.random(NUM_EXAMPLES) < 0.3).astype(np.float32)[:, None]
    return features, labels


def _model():
    init = keras.initializers.GlorotUniform(seed=2)
    return keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(
                8,
                activation="tanh",
                kernel_initializer=init,
                kernel_regularizer=keras.regularizers.L2(L2),
            ),
            keras.layers.Dense(1, kernel_initializer=init),
        ]
    )


def _per_example(labels, logits):
    return losses.binary_focal_crossentropy(labels, logits, gamma=2.0, from_logits=True)


def _reference_weights(steps, penalty=True):
    """Global batches in order (steps <= 4: one epoch, the 4th the short one)."""
    features, labels = _data()
    model = _model()
    for step in range(steps):
        rows = slice(step * GLOBAL_BATCH, (step + 1) * GLOBAL_BATCH)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(_per_example(labels[rows], model(features[rows])))
            if penalty:
                loss += tf.add_n(model.losses)
        for variable, gradient in zip(
            model.trainable_variables,
            tape.gradient(loss, model.trainable_variables),
            strict=True,
        ):
            variable.assign_sub(LEARNING_RATE * gradient)
    return [v.numpy() for v in model.trainable_variables]


def _product_weights(backend, allreduce, steps):
    with backend.scope():
        model = _model()
        optimizer = keras.optimizers.SGD(LEARNING_RATE)
        optimizer.build(model.trainable_variables)
    backend.prepare_optimizer(optimizer)
    step = TrainStep(
        model=model,
        optimizer=optimizer,
        backend=backend,
        loss_terms=(LossTerm("loss", _per_example),),
        evaluation=BucketEvaluation(1, lambda labels, logits: (tf.sigmoid(logits), labels)),
        options=StepOptions(
            per_replica_batch_size=GLOBAL_BATCH // backend.num_replicas_in_sync,
            allreduce=allreduce,
            bucket_bytes=1,
        ),
    )

    def dataset_fn(info):
        return pipeline.split_global_batches(
            tf.data.Dataset.from_tensor_slices(_data()), info, global_batch_size=GLOBAL_BATCH
        )

    step.train_loop(iter(backend.distribute_dataset(dataset_fn, GLOBAL_BATCH)), tf.constant(steps))
    return [v.numpy() for v in model.trainable_variables]


@pytest.mark.parametrize("allreduce", ["single", "overlap"])
@pytest.mark.parametrize("replicas", [1, 4])
def test_four_steps_with_l2_and_a_short_batch_land_on_the_plain_sgd_loop(replicas, allreduce):
    backend = (
        get_backend("default") if replicas == 1 else get_backend("mirrored", num_cpu_devices=4)
    )
    ours = _product_weights(backend, allreduce, steps=4)
    reference = _reference_weights(steps=4)
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The penalty took part, once: without it the plain loop ends elsewhere.
    unpenalised = _reference_weights(steps=4, penalty=False)
    assert max(float(np.abs(a - b).max()) for a, b in zip(ours, unpenalised, strict=True)) > 1e-3
