"""A user's own convolutional model (model.name=tests.training.conv_model:build).

The equivalence test trains it with a short last batch that leaves a replica empty:
oneDNN's Conv2D fails on a [0, H, W, C] batch unless the step pads it.
"""

import keras


def build(*, num_outputs, input_shape, seed):
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Reshape((2, input_shape[0] // 2, 1)),
            keras.layers.Conv2D(4, (2, 2), activation="relu", kernel_initializer=init),
            keras.layers.Flatten(),
            keras.layers.Dense(num_outputs, kernel_initializer=init),
        ]
    )
