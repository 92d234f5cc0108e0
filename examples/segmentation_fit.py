"""Segmentation with model.fit: per-pixel focal loss over the valid pixels of all replicas."""

import keras
import numpy as np
import tensorflow as tf

from focal_dist import losses

VOID = 255  # unannotated pixels


def train(strategy, epochs=3):
    rng = np.random.default_rng(2)
    images = rng.normal(size=(64, 16, 16, 3)).astype("float32")
    masks = (images[..., 0] > 0.5).astype("int64") + (images[..., 1] > 1.0)  # 3 classes
    # Annotation varies by image: replicas see very different numbers of valid pixels.
    void_rate = np.linspace(0.95, 0.0, len(masks))[:, None, None]
    masks[rng.random(masks.shape) < void_rate] = VOID
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((16, 16, 3)),
                keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                keras.layers.Conv2D(3, 1),  # per-pixel logits [B, H, W, 3]
            ]
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.5),
            # global_mean: the valid-pixel count is all-reduced, so fit on N replicas
            # takes the single-device step (Keras's reduction averages per replica).
            loss=losses.SparseCategoricalFocalCrossentropy(
                gamma=2.0, from_logits=True, ignore_class=VOID, reduction="global_mean"
            ),
        )
    history = model.fit(images, masks, batch_size=32, epochs=epochs, shuffle=False, verbose=2)
    return model, history


if __name__ == "__main__":
    train(tf.distribute.MirroredStrategy())
