"""A user's own segmentation model through KerasTask: a per-pixel loss declared per
example is refused naming both shapes before any step is taken; the same loss as a
LossTerm with a mask of valid pixels trains, with per-pixel metrics."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from focal_dist import configs, losses
from focal_dist.tasks import LossTerm
from focal_dist.tasks.segmentation_metrics import SegmentationEvaluation
from focal_dist.training import KerasTask, train_task

SIZE, CLASSES, IGNORE = 8, 2, 255


def _model():
    init = keras.initializers.GlorotUniform(seed=1)
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 1)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", kernel_initializer=init),
            keras.layers.Conv2D(CLASSES, 1, kernel_initializer=init),
        ]
    )


def _examples():
    rng = np.random.default_rng(0)
    images = rng.random((40, SIZE, SIZE, 1)).astype(np.float32)
    labels = (images[..., 0] > 0.8).astype(np.int64)
    labels[:, :2] = IGNORE
    return tf.data.Dataset.from_tensor_slices((images, labels))


_focal = functools.partial(
    losses.sparse_categorical_focal_crossentropy, from_logits=True, ignore_class=IGNORE
)


def _config():
    config = configs.get_config("default")
    config.train.steps, config.train.global_batch_size = 4, 16
    config.train.steps_per_loop, config.train.checkpoint_every = 2, 4
    return config


def test_a_per_pixel_loss_given_as_per_example_names_both_shapes(tmp_path):
    task = KerasTask(
        model_fn=_model,
        train_examples=_examples,
        per_example_loss=_focal,
        num_outputs=CLASSES,
        label_mode="sparse",
    )
    with pytest.raises(
        ValueError,
        match=r"returned shape \[16, 8, 8\]; expected \[16\] .*declare a focal_dist.tasks.LossTerm",
    ):
        train_task(task, workdir=str(tmp_path), config=_config())
    assert not list((tmp_path / "checkpoints").glob("ckpt-*"))


def test_a_per_pixel_loss_term_with_a_valid_pixel_mask_trains(tmp_path):
    task = KerasTask(
        model_fn=_model,
        train_examples=_examples,
        eval_examples=_examples,
        loss_terms=[LossTerm("focal", _focal, mask=lambda y: tf.not_equal(y, IGNORE))],
        evaluation=SegmentationEvaluation(CLASSES, IGNORE),
        num_outputs=CLASSES,
        label_mode="sparse",
    )
    summary = train_task(task, workdir=str(tmp_path), config=_config())
    assert summary["step"] == 4
    assert len(summary["eval"]["iou"]) == CLASSES
    assert summary["eval"]["num_pixels"] == 40 * SIZE * (SIZE - 2)


def test_keras_task_takes_one_loss_form():
    with pytest.raises(TypeError, match="one of per_example_loss= and loss_terms="):
        KerasTask(model_fn=_model, train_examples=_examples, num_outputs=CLASSES)
