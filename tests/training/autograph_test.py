"""The steps are traced as Keras's `fit` traces its own: without autograph.

docs/models_and_images.md promises that a model's `call` branching on a tensor with a
Python `if` fails at the first trace, here as in `fit`, and that one written with
`tf.cond` trains. The reference for the first is Keras's own `fit` on the same model.
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

BATCH = 8


class PythonIf(keras.Model):
    """Doubles its output when the batch's features sum above zero, with a Python `if`."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1, kernel_initializer="ones")

    def call(self, features):
        logits = self.dense(features)
        if tf.reduce_sum(features) > 0:
            return 2.0 * logits
        return logits


class GraphCond(PythonIf):
    """The same model with the branch as `tf.cond`."""

    def call(self, features):
        logits = self.dense(features)
        return tf.cond(tf.reduce_sum(features) > 0, lambda: 2.0 * logits, lambda: logits)


def _examples():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4 * BATCH, 3)).astype(np.float32)
    labels = (rng.random((4 * BATCH, 1)) < 0.3).astype(np.float32)
    return features, labels


def _train_steps(model, steps=3):
    backend = get_backend("default")
    features, labels = _examples()
    with backend.scope():
        model(features[:1])
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(model.trainable_variables)
    step = TrainStep(
        model=model,
        optimizer=optimizer,
        backend=backend,
        loss_terms=(
            LossTerm("loss", lambda y, z: losses.binary_focal_crossentropy(y, z, from_logits=True)),
        ),
        evaluation=BucketEvaluation(1, lambda y, z: (tf.sigmoid(z), y)),
        options=StepOptions(per_replica_batch_size=BATCH),
    )
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    iterator = iter(
        backend.distribute_dataset(
            lambda info: pipeline.split_global_batches(dataset, info, global_batch_size=BATCH),
            BATCH,
        )
    )
    step_losses, _ = step.train_loop(iterator, tf.constant(steps))
    return step_losses.numpy()


def test_a_python_if_on_a_tensor_fails_at_the_first_trace_as_in_keras_fit():
    features, labels = _examples()
    reference = PythonIf()
    reference.compile(optimizer="sgd", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    with pytest.raises(tf.errors.OperatorNotAllowedInGraphError) as in_fit:
        reference.fit(features, labels, batch_size=BATCH, epochs=1, verbose=0)
    with pytest.raises(tf.errors.OperatorNotAllowedInGraphError) as in_ours:
        _train_steps(PythonIf())
    assert "as a Python `bool` is not allowed" in str(in_fit.value)
    assert "as a Python `bool` is not allowed" in str(in_ours.value)


def test_the_same_branch_written_with_tf_cond_trains():
    model = GraphCond()
    features, labels = _examples()
    # The first step's loss, from the untrained model called eagerly on the first batch.
    first = features[:BATCH]
    expected = (
        losses.binary_focal_crossentropy(labels[:BATCH], model(first), from_logits=True)
        .numpy()
        .mean()
    )
    step_losses = _train_steps(model)
    assert step_losses.shape == (3,)
    np.testing.assert_allclose(step_losses[0], expected, rtol=1e-6)
    assert np.all(np.isfinite(step_losses))
