"""Sliding-window inference against whole-image inference and NumPy/SciPy references."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from focal_dist.models import sliding_window as sw

NUM_CLASSES = 3


def _per_pixel_model(channels: int, seed: int = 0) -> keras.Model:
    """1x1 convolutions: each pixel's logits depend on that pixel alone."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, channels))
    x = keras.layers.Conv2D(8, 1, activation="tanh", bias_initializer="random_normal")(inputs)
    outputs = keras.layers.Conv2D(NUM_CLASSES, 1, bias_initializer="random_normal")(x)
    return keras.Model(inputs, outputs)


def _conv_model(channels: int) -> keras.Model:
    """Two 3x3 'same' convolutions: each logit sees a 5x5 neighbourhood (radius 2)."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, channels))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(NUM_CLASSES, 3, padding="same")(x)
    return keras.Model(inputs, outputs)


def _monai_starts(size: int, window: int, interval: int) -> list[int]:
    """MONAI's dense_patch_slices along one axis, written out (image >= window)."""
    count = next(d for d in range(size) if d * interval + window >= size) + 1
    return [i * interval - max(i * interval + window - size, 0) for i in range(count)]


def _infer(model, image, **kwargs):
    return sw.sliding_window_logits(
        lambda x: model(x, training=False), image, num_classes=NUM_CLASSES, **kwargs
    ).numpy()


@pytest.mark.parametrize(
    ("shape", "window", "overlap"),
    [
        ((37, 53), 16, 0.5),
        ((64, 64), 32, 0.5),
        ((1000, 700), 128, 0.5),
        ((45, 70), (16, 24), 0.25),
        ((10, 7), 32, 0.5),  # smaller than the window: padded, cropped back
        ((33, 5), 16, 0.0),
    ],
)
def test_per_pixel_model_blended_logits_equal_whole_image_logits(shape, window, overlap):
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(*shape, 2)).astype(np.float32)
    model = _per_pixel_model(2)
    blended = _infer(model, image, window=window, overlap=overlap, window_batch=5)
    whole = model(image[None], training=False).numpy()[0]
    assert blended.shape == (*shape, NUM_CLASSES)
    np.testing.assert_allclose(blended, whole, rtol=1e-6, atol=1e-6)


def test_receptive_field_model_matches_whole_image_where_every_window_sees_the_context():
    """A pixel whose 5x5 neighbourhood lies inside every window covering it (or is cut by
    the image border only) gets the whole-image logits exactly."""
    height, width, window, radius = 70, 90, 24, 2
    rng = np.random.default_rng(1)
    image = rng.uniform(size=(height, width, 1)).astype(np.float32)
    model = _conv_model(1)
    blended = _infer(model, image, window=window, overlap=0.5, window_batch=4)
    whole = model(image[None], training=False).numpy()[0]

    def safe(size):
        """Pixels at least `radius` from every edge of a covering window that is not
        an image border."""
        ok = np.ones(size, bool)
        for start in _monai_starts(size, window, window // 2):
            if start > 0:
                ok[start : start + radius] = False
            if start + window < size:
                ok[start + window - radius : start + window] = False
        return ok

    mask = safe(height)[:, None] & safe(width)[None, :]
    assert 0.2 < mask.mean() < 0.9  # the test compares many pixels, and not all
    np.testing.assert_allclose(blended[mask], whole[mask], rtol=1e-5, atol=1e-5)
    # Elsewhere the blend mixes windows that saw zero padding: close, not equal.
    assert np.abs(blended[~mask] - whole[~mask]).max() > 1e-4


@pytest.mark.parametrize("side", [7, 16, 33, 64])
def test_gaussian_profile_is_a_delta_smoothed_by_scipy_with_sigma_an_eighth(side):
    """nnU-Net builds the weights by Gaussian-filtering a centred delta; for an odd side
    that is our profile before the floor. An even side centres between two pixels."""
    profile = sw.gaussian_profile(side)
    if side % 2:
        delta = np.zeros(side)
        delta[side // 2] = 1.0
        reference = ndimage.gaussian_filter1d(delta, side / 8, mode="constant", truncate=50)
        reference /= reference.max()
    else:
        x = np.arange(side) - (side - 1) / 2
        reference = np.exp(-(x**2) / (2 * (side / 8) ** 2))
        reference /= reference.max()
    np.testing.assert_allclose(profile, np.maximum(reference, 1e-3), rtol=1e-6)
    np.testing.assert_allclose(profile, profile[::-1])
    weights = sw.importance_weights((side, 5))
    np.testing.assert_allclose(weights, np.outer(profile, sw.gaussian_profile(5)))
    assert profile.min() >= sw.FLOOR
    assert profile.max() == 1.0


@pytest.mark.parametrize(
    ("size", "window", "overlap"),
    [(1000, 128, 0.5), (700, 128, 0.0), (37, 16, 0.5), (16, 16, 0.5), (130, 64, 0.75)],
)
def test_window_starts_follow_monai(size, window, overlap):
    (stride, _) = sw.window_stride(window, overlap)
    assert stride == max(1, int(window * (1 - overlap)))
    starts = sw.window_starts(size, window, stride).numpy().tolist()
    assert starts == _monai_starts(size, window, stride)


@pytest.mark.parametrize(("overlap", "expected"), [(0.0, 8 * 6), (0.5, 15 * 10)])
def test_model_sees_the_number_of_windows_of_the_grid(overlap, expected):
    """1000 x 700 with 128-pixel windows: ceil(872 / s) + 1 by ceil(572 / s) + 1 windows,
    s = 128 (no overlap) or 64; counted by the model itself, in batches of 7."""
    assert expected == (math.ceil(872 / (128 * (1 - overlap))) + 1) * (
        math.ceil(572 / (128 * (1 - overlap))) + 1
    )
    seen, calls = tf.Variable(0), tf.Variable(0)

    def counting_model(windows):
        seen.assign_add(tf.shape(windows)[0])
        calls.assign_add(1)
        return tf.zeros([tf.shape(windows)[0], 128, 128, NUM_CLASSES])

    infer = tf.function(
        lambda image: sw.sliding_window_logits(
            counting_model,
            image,
            window=128,
            overlap=overlap,
            window_batch=7,
            num_classes=NUM_CLASSES,
        ),
        input_signature=[tf.TensorSpec([None, None, 1])],
    )
    infer(tf.zeros([1000, 700, 1]))
    # The static shape survives the graph, so argmax and the component filter know it.
    assert infer.get_concrete_function().structured_outputs.shape.as_list() == [
        None,
        None,
        NUM_CLASSES,
    ]
    assert int(seen.numpy()) == expected
    rows, columns = (8, 6) if overlap == 0 else (15, 10)
    assert int(calls.numpy()) == rows * math.ceil(columns / 7)  # batches within a row
