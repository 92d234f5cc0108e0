"""model.compile / model.fit: the loss classes are a mean over the batch, as Keras's own."""

import keras
import numpy as np
import tensorflow as tf

from focal_dist import class_weights, losses


def train(strategy, epochs=3):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, :1] + rng.normal(size=(512, 1)) > 2.0).astype("float32")  # ~5% positives
    # The positive-class alpha from the label counts (each example counted once).
    histogram = class_weights.label_histogram(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(256),
        num_classes=1,
        label_mode="binary",
        backend=strategy,
    )
    alpha = class_weights.focal_alpha(histogram)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, "relu"),
                keras.layers.Dense(1),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.5),
            loss=losses.BinaryFocalCrossentropy(
                gamma=2.0, alpha=alpha, apply_class_balancing=True, from_logits=True
            ),
        )
    history = model.fit(x, y, batch_size=64, epochs=epochs, shuffle=False, verbose=2)
    return model, history


if __name__ == "__main__":
    train(tf.distribute.MirroredStrategy())
