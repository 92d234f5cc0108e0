"""A small convolutional classifier for images, exact under any number of replicas."""

from __future__ import annotations

from collections.abc import Sequence

import keras


def build(
    *,
    num_outputs: int,
    input_shape: Sequence[int],
    seed: int = 0,
    l2: float = 0.0,
    filters: Sequence[int] = (32, 64, 128),
) -> keras.Model:
    """Stages of two 3x3 ReLU convolutions and a 2x2 max-pool, global average, logits.

    Input: `[B, H, W, C]` floats (the image sources give values in [0, 1]); output:
    `[B, num_outputs]` logits. Every layer works on each example alone (no batch
    normalisation), so a global batch split over replicas gives the same outputs and
    gradients as on one device: the global-mean invariant holds for this model.
    Initialisers are seeded from `seed`, so every worker builds the same weights;
    `l2` > 0 adds an L2 penalty on every kernel.
    """
    if len(input_shape) != 3:
        raise ValueError(
            f"model 'cnn' takes images, input_shape (height, width, channels); got "
            f"{tuple(input_shape)}"
        )
    if not filters:
        raise ValueError("model.filters must name at least one convolution stage; got ()")
    regularizer = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(tuple(input_shape), name="images")
    x = inputs
    layer = 0
    for stage, width in enumerate(filters):
        for k in range(2):
            x = keras.layers.Conv2D(
                int(width),
                3,
                padding="same",
                activation="relu",
                kernel_initializer=keras.initializers.HeNormal(seed=seed + layer),
                kernel_regularizer=regularizer,
                name=f"stage_{stage}_conv_{k}",
            )(x)
            layer += 1
        # No pooling below 2x2: a deep stack on small images keeps its last map.
        if x.shape[1] >= 2 and x.shape[2] >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"stage_{stage}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(
        num_outputs,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1000),
        kernel_regularizer=regularizer,
        name="logits",
    )(x)
    return keras.Model(inputs, logits, name="cnn")
