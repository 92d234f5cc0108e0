"""The step math on 4 logical-CPU replicas against one device, with empty replica batches.

A global batch of 16 over 4 replicas with a short last batch of 5 examples gives the
replicas 4, 1, 0 and 0 examples. A convolutional model must train and evaluate through
it (oneDNN's Conv2D fails on an empty batch) and end where one device ends.
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

GLOBAL_BATCH = 16
NUM_EXAMPLES = 3 * GLOBAL_BATCH + 5  # three full global batches, then 5 examples


def _examples():
    rng = np.random.default_rng(3)
    images = rng.normal(size=(NUM_EXAMPLES, 6, 6, 1)).astype(np.float32)
    labels = (rng.random(NUM_EXAMPLES) < 0.3).astype(np.float32)[:, None]
    return tf.data.Dataset.from_tensor_slices((images, labels))


def _conv_model():
    init = keras.initializers.GlorotUniform(seed=1)
    return keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer=init),
            keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer=init),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, kernel_initializer=init),
        ]
    )


def _per_example_loss(labels, logits):
    return losses.binary_focal_crossentropy(labels, logits, gamma=2.0, from_logits=True)


def _task_parts():
    """The loss terms and evaluation of a binary task with `_per_example_loss`."""
    return {
        "loss_terms": (LossTerm("loss", _per_example_loss),),
        "evaluation": BucketEvaluation(1, lambda labels, logits: (tf.sigmoid(logits), labels)),
    }


def _step(backend, jit_compile, allreduce="single"):
    with backend.scope():
        model = _conv_model()
        optimizer = keras.optimizers.SGD(0.5)
        optimizer.build(model.trainable_variables)
    backend.prepare_optimizer(optimizer)
    return TrainStep(
        model=model,
        optimizer=optimizer,
        backend=backend,
        **_task_parts(),
        options=StepOptions(
            per_replica_batch_size=GLOBAL_BATCH // backend.num_replicas_in_sync,
            jit_compile=jit_compile,
            allreduce=allreduce,
            # Overlapped: one bucket per variable (every bucket a collective of its own).
            bucket_bytes=1,
        ),
    )


def _train(backend, steps, jit_compile=False, allreduce="single"):
    step = _step(backend, jit_compile, allreduce)
    model = step.model

    def dataset_fn(info, repeat=True):
        return pipeline.split_global_batches(
            _examples(), info, global_batch_size=GLOBAL_BATCH, repeat=repeat
        )

    iterator = iter(backend.distribute_dataset(dataset_fn, GLOBAL_BATCH))
    step_losses, _ = step.train_loop(iterator, tf.constant(steps))
    totals = np.zeros(step.eval_vector_size)
    for batch in backend.distribute_dataset(lambda info: dataset_fn(info, False), GLOBAL_BATCH):
        totals += step.eval_step(batch).numpy()
    return step_losses.numpy(), [v.numpy() for v in model.trainable_variables], totals


@pytest.fixture(scope="module")
def single_device():
    return _train(get_backend("default"), steps=8)


@pytest.mark.parametrize("allreduce", ["single", "overlap"])
@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager-graph", "xla"])
def test_conv_model_on_4_replicas_with_empty_replica_batches_matches_one_device(
    single_device, jit_compile, allreduce
):
    mirrored = get_backend("mirrored", num_cpu_devices=4)
    # Steps 4 and 8 are the short batch of 5: replicas get 4, 1, 0, 0 examples.
    step_losses, weights, totals = _train(
        mirrored, steps=8, jit_compile=jit_compile, allreduce=allreduce
    )
    reference_losses, reference_weights, reference_totals = single_device
    np.testing.assert_allclose(step_losses, reference_losses, rtol=1e-5)
    for ours, reference in zip(weights, reference_weights, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    # Evaluation counts every example once, padding none: 53 examples.
    assert totals[-1] == NUM_EXAMPLES
    np.testing.assert_allclose(totals, reference_totals, rtol=1e-5, atol=1e-6)


def test_one_replica_xla_compiles_the_whole_update_and_matches_graph_mode(single_device):
    # One replica, no collective: the forward, backward, clipping and optimizer update
    # are one XLA cluster, padding included; the short batch of 5 (steps 4 and 8) is a
    # second compilation.
    backend = get_backend("default")
    with backend.scope():
        model = _conv_model()
        optimizer = keras.optimizers.SGD(0.5)
    step = TrainStep(
        model=model,
        optimizer=optimizer,
        backend=backend,
        **_task_parts(),
        options=StepOptions(per_replica_batch_size=GLOBAL_BATCH, jit_compile=True),
    )
    assert step.whole_step_compiled
    assert not TrainStep(
        model=model,
        optimizer=optimizer,
        backend=get_backend("mirrored", num_cpu_devices=4),
        **_task_parts(),
        options=StepOptions(per_replica_batch_size=GLOBAL_BATCH // 4, jit_compile=True),
    ).whole_step_compiled
    step_losses, weights, totals = _train(backend, steps=8, jit_compile=True)
    reference_losses, reference_weights, reference_totals = single_device
    np.testing.assert_allclose(step_losses, reference_losses, rtol=1e-5)
    for ours, reference in zip(weights, reference_weights, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(totals, reference_totals, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("backend_name", "jit_compile"),
    [("default", True), ("mirrored", False)],
    ids=["xla", "mirrored4"],
)
def test_calls_of_3_1_4_steps_read_exactly_8_batches_like_one_call_of_8(backend_name, jit_compile):
    # The loop fetches step i+1's batch while step i trains: a call must still read
    # exactly its own steps' batches (a checkpoint records the input position after a
    # call), across the short batch of step 4. Shuffled anew each pass, so no two
    # passes give the same batches and a misplaced read cannot go unseen.
    def backend():
        if backend_name == "mirrored":
            return get_backend("mirrored", num_cpu_devices=4)
        return get_backend(backend_name)

    def iterator(distribution):
        def dataset_fn(info):
            return pipeline.split_global_batches(
                _examples(), info, global_batch_size=GLOBAL_BATCH, shuffle_buffer=64, seed=5
            )

        return iter(distribution.distribute_dataset(dataset_fn, GLOBAL_BATCH))

    def replica_images(distribution, batch):
        return np.concatenate([t.numpy() for t in distribution.local_results(batch[0])])

    one_call = _step(backend(), jit_compile)
    one_iterator = iterator(one_call.backend)
    reference_losses = one_call.train_loop(one_iterator, tf.constant(8))[0].numpy()
    reference_next = replica_images(one_call.backend, next(one_iterator))

    three_calls = _step(backend(), jit_compile)
    calls_iterator = iterator(three_calls.backend)
    losses = [three_calls.train_loop(calls_iterator, tf.constant(n))[0].numpy() for n in (3, 1, 4)]
    np.testing.assert_allclose(np.concatenate(losses), reference_losses, rtol=1e-6)
    for ours, reference in zip(
        three_calls.model.trainable_variables, one_call.model.trainable_variables, strict=True
    ):
        np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-6)

    # Both iterators now stand at the 9th batch; a fresh one read 8 times in Python too.
    fresh = iterator(three_calls.backend)
    for _ in range(8):
        next(fresh)
    expected = replica_images(three_calls.backend, next(fresh))
    np.testing.assert_array_equal(
        replica_images(three_calls.backend, next(calls_iterator)), expected
    )
    np.testing.assert_array_equal(reference_next, expected)
