"""Models of per-pixel logits: the built-in unet from 32x32 up with configurable widths,
and a user's `module:function` returning [B, H, W, C], checked by shape."""

import sys

import keras
import numpy as np
import pytest

from focal_dist import models


@pytest.mark.parametrize(
    ("input_shape", "widths"),
    [((32, 32, 1), (8, 16, 32)), ((64, 48, 3), (4, 8)), ((32, 32, 3), (4,))],
)
def test_unet_maps_images_to_logits_per_pixel(input_shape, widths):
    model = models.build_model(
        {"name": "unet", "widths": widths}, num_outputs=3, input_shape=input_shape, dense=True
    )
    assert model.output_shape == (None, *input_shape[:2], 3)
    logits = model(np.zeros((2, *input_shape), np.float32), training=True)
    assert logits.shape == (2, *input_shape[:2], 3)


def test_unet_is_seeded_the_same_on_every_worker():
    first, second = (
        models.build_model("unet", num_outputs=2, input_shape=(32, 32, 1), seed=4, dense=True)
        for _ in range(2)
    )
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_unet_without_batch_norm_has_none():
    model = models.build_model(
        {"name": "unet", "batch_norm": False}, num_outputs=2, input_shape=(32, 32, 1), dense=True
    )
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def test_unet_refuses_sides_its_poolings_cannot_halve():
    with pytest.raises(ValueError, match=r"3 levels .* multiples of 4; got 30x32"):
        models.build_model("unet", num_outputs=2, input_shape=(30, 32, 1), dense=True)


USER = """
import keras

def dense_net(*, num_outputs, input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Conv2D(num_outputs, 1)(inputs))

def pooled_net(*, num_outputs, input_shape):
    inputs = keras.Input(input_shape)
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_outputs)(x))
"""


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dense_user")
    (folder / "focal_dist_dense_user.py").write_text(USER)
    sys.path.insert(0, str(folder))
    yield
    sys.path.remove(str(folder))
    sys.modules.pop("focal_dist_dense_user", None)


def test_a_user_function_returning_per_pixel_logits_is_accepted(user_module):
    model = models.build_model(
        "focal_dist_dense_user:dense_net", num_outputs=4, input_shape=(16, 16, 3), dense=True
    )
    assert model.output_shape == (None, 16, 16, 4)


def test_a_per_image_model_for_a_dense_task_names_both_shapes(user_module):
    with pytest.raises(
        ValueError,
        match=r"output has shape \(None, 4\); expected .* to \[batch, 16, 16, 4\] logits",
    ):
        models.build_model(
            "focal_dist_dense_user:pooled_net", num_outputs=4, input_shape=(16, 16, 3), dense=True
        )
