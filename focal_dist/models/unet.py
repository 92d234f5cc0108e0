"""A U-Net (Ronneberger et al. 2015) for per-pixel logits, small enough for 32x32 images.

    widths = (16, 32, 64):  32x32 -> 16x16 -> 8x8 (bottom) -> 16x16 -> 32x32 -> 1x1 conv

Each level is two 3x3 convolutions (with BatchNormalization when `batch_norm`), then a
2x2 max-pool on the way down; on the way up a 2x2 transposed convolution doubles the
size, the level's encoder output is concatenated, and two 3x3 convolutions follow. The
output is `[B, H, W, num_outputs]` logits at the input's size; H and W must be
multiples of 2^(len(widths) - 1). Initialisers are seeded from `seed`, so every worker
builds the same weights; `l2` > 0 adds an L2 penalty on every kernel.

BatchNormalization is exact under distribution in focal_dist's step only when
synchronized (`model.sync_batch_norm`, models/batch_norm.py); padding rows never enter
its statistics either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras


def build(
    *,
    num_outputs: int,
    input_shape: Sequence[int],
    seed: int = 0,
    l2: float = 0.0,
    widths: Sequence[int] = (16, 32, 64),
    batch_norm: bool = True,
) -> keras.Model:
    """The U-Net described in the module docstring."""
    if len(input_shape) != 3:
        raise ValueError(
            f"model 'unet' takes images, input_shape (height, width, channels); got "
            f"{tuple(input_shape)}"
        )
    widths = [int(w) for w in widths]
    if not widths or min(widths) < 1:
        raise ValueError(f"model.widths must be positive integers, one per level; got {widths}")
    factor = 2 ** (len(widths) - 1)
    height, width = input_shape[:2]
    if height % factor or width % factor:
        raise ValueError(
            f"model 'unet' with {len(widths)} levels (model.widths={tuple(widths)}) needs "
            f"image sides that are multiples of {factor}; got {height}x{width}"
        )
    regularizer = keras.regularizers.L2(l2) if l2 else None
    counter = iter(range(10_000))

    def conv(x, filters, name, kernel=3):
        x = keras.layers.Conv2D(
            filters,
            kernel,
            padding="same",
            use_bias=not batch_norm,
            kernel_initializer=keras.initializers.HeNormal(seed=seed + next(counter)),
            kernel_regularizer=regularizer,
            name=name,
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        return keras.layers.ReLU(name=f"{name}_relu")(x)

    inputs = keras.Input(tuple(input_shape), name="images")
    x, skips = inputs, []
    for level, filters in enumerate(widths):
        x = conv(conv(x, filters, f"down_{level}_a"), filters, f"down_{level}_b")
        if level < len(widths) - 1:
            skips.append(x)
            x = keras.layers.MaxPooling2D(2, name=f"down_{level}_pool")(x)
    for level in reversed(range(len(widths) - 1)):
        filters = widths[level]
        x = keras.layers.Conv2DTranspose(
            filters,
            2,
            strides=2,
            kernel_initializer=keras.initializers.HeNormal(seed=seed + next(counter)),
            kernel_regularizer=regularizer,
            name=f"up_{level}_upsample",
        )(x)
        x = keras.layers.Concatenate(name=f"up_{level}_concat")([x, skips[level]])
        x = conv(conv(x, filters, f"up_{level}_a"), filters, f"up_{level}_b")
    logits = keras.layers.Conv2D(
        num_outputs,
        1,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 5000),
        kernel_regularizer=regularizer,
        name="logits",
    )(x)
    return keras.Model(inputs, logits, name="unet")
