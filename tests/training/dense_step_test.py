"""The step math per element: a per-pixel focal term (ignored pixels uncounted) plus a
per-image Dice term, each with its own global denominator, on 4 logical-CPU replicas
against one device, with images whose valid-pixel counts differ by two orders of
magnitude, a short last batch and empty replicas."""

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

GLOBAL_BATCH = 8
NUM_EXAMPLES = 3 * GLOBAL_BATCH + 3  # the short last batch gives replicas 2, 1, 0, 0
SIZE, CLASSES, IGNORE = 8, 3, 255
DICE_WEIGHT = 0.5


def _examples():
    rng = np.random.default_rng(7)
    images = rng.normal(size=(NUM_EXAMPLES, SIZE, SIZE, 1)).astype(np.float32)
    labels = rng.choice(CLASSES, size=(NUM_EXAMPLES, SIZE, SIZE), p=[0.9, 0.07, 0.03])
    # Valid pixels per image from 1 to all 64, and some images wholly ignored.
    for i in range(NUM_EXAMPLES):
        keep = [0, 1, 64, 2, 64, 30, 5, 64][i % 8]
        ignored = rng.permutation(SIZE * SIZE)[keep:]
        labels[i].reshape(-1)[ignored] = IGNORE
    return images, labels.astype(np.int64)


def _model():
    init = keras.initializers.GlorotUniform(seed=3)
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 1)),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu", kernel_initializer=init),
            keras.layers.Conv2D(CLASSES, 1, kernel_initializer=init),
        ]
    )


def _focal(labels, logits):
    return losses.sparse_categorical_focal_crossentropy(
        tf.where(labels == IGNORE, tf.zeros_like(labels), labels),
        logits,
        gamma=2.0,
        from_logits=True,
    )


def _valid_pixels(labels):
    return tf.cast(labels != IGNORE, tf.float32)


def _dice(labels, logits):
    """1 - soft Dice of each image over its valid pixels (MONAI's batch=False)."""
    valid = _valid_pixels(labels)[..., None]
    probabilities = tf.nn.softmax(logits) * valid
    targets = tf.one_hot(tf.where(labels == IGNORE, tf.zeros_like(labels), labels), CLASSES) * valid
    intersection = tf.reduce_sum(probabilities * targets, axis=[1, 2, 3])
    total = tf.reduce_sum(probabilities + targets, axis=[1, 2, 3])
    return 1.0 - (2.0 * intersection + 1e-5) / (total + 1e-5)


def _has_valid_pixels(labels):
    return tf.cast(tf.reduce_any(labels != IGNORE, axis=[1, 2]), tf.float32)


TERMS = (
    LossTerm("focal", _focal, mask=_valid_pixels),
    LossTerm("dice", _dice, mask=_has_valid_pixels, weight=DICE_WEIGHT),
)


def _pixel_accuracy_evaluation():
    # The bucket metrics of the foreground class's probability per valid pixel would need
    # pixel rows; here one output per image (its mean foreground probability) suffices.
    def probabilities_and_targets(labels, logits):
        foreground = tf.reduce_mean(tf.nn.softmax(logits)[..., 1:], axis=[1, 2, 3])
        return foreground[:, None], tf.cast(tf.reduce_any(labels == 2, axis=[1, 2]), tf.float32)[
            :, None
        ]

    return BucketEvaluation(1, probabilities_and_targets)


def _train(backend, steps, allreduce="overlap", jit_compile=False):
    with backend.scope():
        model = _model()
        optimizer = keras.optimizers.SGD(0.5)
        optimizer.build(model.trainable_variables)
    backend.prepare_optimizer(optimizer)
    step = TrainStep(
        model=model,
        optimizer=optimizer,
        backend=backend,
        loss_terms=TERMS,
        evaluation=_pixel_accuracy_evaluation(),
        options=StepOptions(
            per_replica_batch_size=GLOBAL_BATCH // backend.num_replicas_in_sync,
            allreduce=allreduce,
            bucket_bytes=1,
            jit_compile=jit_compile,
        ),
    )
    images, labels = _examples()

    def dataset_fn(info, repeat=True):
        examples = tf.data.Dataset.from_tensor_slices((images, labels))
        return pipeline.split_global_batches(
            examples, info, global_batch_size=GLOBAL_BATCH, repeat=repeat
        )

    iterator = iter(backend.distribute_dataset(dataset_fn, GLOBAL_BATCH))
    step_losses, _ = step.train_loop(iterator, tf.constant(steps))
    totals = np.zeros(step.eval_vector_size)
    for batch in backend.distribute_dataset(lambda info: dataset_fn(info, False), GLOBAL_BATCH):
        totals += step.eval_step(batch).numpy()
    return step_losses.numpy(), [v.numpy() for v in model.trainable_variables], totals, step


@pytest.fixture(scope="module")
def single_device():
    return _train(get_backend("default"), steps=8)


def test_first_step_loss_is_the_global_mean_over_valid_pixels_plus_the_mean_image_dice():
    # An independent formula on the whole first global batch, with the initial weights.
    images, labels = _examples()
    model = _model()
    logits = model(images[:GLOBAL_BATCH])
    batch_labels = tf.constant(labels[:GLOBAL_BATCH])
    focal = _focal(batch_labels, logits).numpy().astype(np.float64)
    valid = labels[:GLOBAL_BATCH] != IGNORE
    dice = _dice(batch_labels, logits).numpy().astype(np.float64)
    has_valid = valid.any(axis=(1, 2))
    expected = focal[valid].sum() / valid.sum() + DICE_WEIGHT * dice[has_valid].mean()
    step_losses, *_ = _train(get_backend("default"), steps=1)
    np.testing.assert_allclose(step_losses[0], expected, rtol=1e-5)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_four_replicas_with_uneven_valid_pixels_match_one_device(single_device, jit_compile):
    step_losses, weights, totals, step = _train(
        get_backend("mirrored", num_cpu_devices=4), steps=8, jit_compile=jit_compile
    )
    reference_losses, reference_weights, reference_totals, _ = single_device
    np.testing.assert_allclose(step_losses, reference_losses, rtol=1e-5)
    for ours, reference in zip(weights, reference_weights, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(totals, reference_totals, rtol=1e-5, atol=1e-6)
    # The eval counts: every valid pixel and every image with one, padding none.
    _, labels = _examples()
    _, _, rows = step.split_eval_totals(totals)
    assert rows == NUM_EXAMPLES
    size = step.evaluation.size
    np.testing.assert_array_equal(
        totals[size + 2 : size + 4],
        [(labels != IGNORE).sum(), (labels != IGNORE).any(axis=(1, 2)).sum()],
    )
    assert reference_losses[-1] < reference_losses[0]


def test_single_collective_refuses_a_task_of_two_terms():
    with pytest.raises(
        ValueError, match=r'allreduce="single" sums one loss term; .* 2 \(focal, dice\)'
    ):
        _train(get_backend("default"), steps=1, allreduce="single")


def test_a_per_pixel_loss_declared_per_example_names_both_shapes():
    backend = get_backend("default")
    model = _model()
    optimizer = keras.optimizers.SGD(0.5)
    step = TrainStep(
        model=model,
        optimizer=optimizer,
        backend=backend,
        loss_terms=(LossTerm("loss", _focal),),
        evaluation=_pixel_accuracy_evaluation(),
        options=StepOptions(per_replica_batch_size=GLOBAL_BATCH),
    )
    images, labels = _examples()
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(GLOBAL_BATCH).repeat()
    with pytest.raises(
        ValueError, match=r"loss term 'loss' returned shape \[8, 8, 8\]; expected \[8\]"
    ):
        step.train_loop(iter(dataset), tf.constant(1))
