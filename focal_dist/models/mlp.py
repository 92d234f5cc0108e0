"""The multilayer perceptron over a flat feature vector (the default model)."""

from __future__ import annotations

from collections.abc import Sequence

import keras


def build_mlp(
    num_features: int, hidden_units, num_outputs: int, seed: int, l2: float = 0.0
) -> keras.Model:
    """ReLU MLP ending in logits; initialisers seeded so every worker builds the same model.

    `l2` > 0 adds an L2 penalty on every kernel (regularisation losses in `model.losses`).
    """
    regularizer = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input((num_features,), name="features")
    x = inputs
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(
            units,
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i),
            kernel_regularizer=regularizer,
            name=f"hidden_{i}",
        )(x)
    logits = keras.layers.Dense(
        num_outputs,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1000),
        kernel_regularizer=regularizer,
        name="logits",
    )(x)
    return keras.Model(inputs, logits, name="mlp")


def build(
    *,
    num_outputs: int,
    input_shape: Sequence[int],
    seed: int = 0,
    l2: float = 0.0,
    hidden_units: Sequence[int] = (64, 32),
) -> keras.Model:
    """`build_mlp` in the registry's calling convention; `input_shape` must be `(F,)`."""
    if len(input_shape) != 1:
        raise ValueError(
            f"model 'mlp' takes flat feature vectors, input_shape (num_features,); got "
            f"{tuple(input_shape)} (for images use model.name=cnn, resnet50 or efficientnet_b0)"
        )
    return build_mlp(int(input_shape[0]), tuple(hidden_units), num_outputs, seed=seed, l2=l2)
