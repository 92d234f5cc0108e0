"""Keras Applications backbones (ResNet-50, EfficientNet-B0) with a logits head.

Built with `weights=None`: nothing is downloaded and training starts from scratch.
The backbones use batch normalisation, whose statistics are those of each replica's
batch (as in Keras and TF Model Garden without sync BN), so unlike `mlp` and `cnn` they
are not bit-for-bit the single-device model when a global batch is split.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Sequence

import keras

# Keras Applications refuse smaller images (their stride-32 stems need at least this).
MIN_IMAGE_SIZE = 32


@contextlib.contextmanager
def _seeded_python_random(seed: int):
    # Keras's unseeded initialisers draw their seeds from Python's `random`: seeding it
    # while the backbone is built makes every worker (and every rerun) build the same
    # weights, without touching NumPy's or TensorFlow's global seeds.
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _add_l2(backbone: keras.Model, l2: float) -> None:
    regularizer = keras.regularizers.L2(l2)
    for layer in backbone.layers:
        for name in ("kernel", "depthwise_kernel"):
            variable = getattr(layer, name, None)
            if isinstance(variable, keras.Variable):
                variable.regularizer = regularizer
                setattr(layer, f"{name}_regularizer", regularizer)


def _build(
    application: Callable[..., keras.Model],
    name: str,
    *,
    num_outputs: int,
    input_shape: Sequence[int],
    seed: int,
    l2: float,
    input_scale: float,
) -> keras.Model:
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3 or min(input_shape[:2]) < MIN_IMAGE_SIZE:
        raise ValueError(
            f"model {name!r} takes images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE}, "
            f"input_shape (height, width, channels); got {input_shape}"
        )
    inputs = keras.Input(input_shape, name="images")
    x = (
        keras.layers.Rescaling(input_scale, name="input_scale")(inputs)
        if input_scale != 1
        else inputs
    )
    with _seeded_python_random(seed):
        backbone = application(
            include_top=False, weights=None, input_shape=input_shape, pooling="avg"
        )
    if l2:
        _add_l2(backbone, l2)
    features = backbone(x)
    logits = keras.layers.Dense(
        num_outputs,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1000),
        kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
        name="logits",
    )(features)
    return keras.Model(inputs, logits, name=name)


def build_resnet50(
    *, num_outputs: int, input_shape: Sequence[int], seed: int = 0, l2: float = 0.0
) -> keras.Model:
    """ResNet-50 v1 (`keras.applications.ResNet50`), global average pool, logits.

    Input `[B, H, W, C]` floats in [0, 1], H and W >= 32; output `[B, num_outputs]`.
    """
    return _build(
        keras.applications.ResNet50,
        "resnet50",
        num_outputs=num_outputs,
        input_shape=input_shape,
        seed=seed,
        l2=l2,
        input_scale=1.0,
    )


def build_efficientnet_b0(
    *, num_outputs: int, input_shape: Sequence[int], seed: int = 0, l2: float = 0.0
) -> keras.Model:
    """EfficientNet-B0 (`keras.applications.EfficientNetB0`), global average pool, logits.

    Input `[B, H, W, C]` floats in [0, 1], H and W >= 32. The Keras model divides its
    input by 255 itself, so the images are first scaled to [0, 255].
    """
    return _build(
        keras.applications.EfficientNetB0,
        "efficientnet_b0",
        num_outputs=num_outputs,
        input_shape=input_shape,
        seed=seed,
        l2=l2,
        input_scale=255.0,
    )
