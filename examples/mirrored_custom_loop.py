"""A custom training loop under MirroredStrategy: one mean over each global batch."""

import keras
import numpy as np
import tensorflow as tf

from focal_dist import losses

GLOBAL_BATCH = 64


def train(strategy, epochs=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(289, 8)).astype("float32")  # 4 batches of 64 and one of 33
    y = (x[:, :1] + rng.normal(size=(289, 1)) > 1.5).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, "relu", kernel_regularizer=keras.regularizers.L2(1e-3)),
                keras.layers.Dense(1),
            ]
        )
        optimizer = keras.optimizers.SGD(0.5)
    loss_fn = losses.BinaryFocalCrossentropy(gamma=2.0, from_logits=True, reduction="none")

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            per_example = loss_fn(y, model(x, training=True))
            # This replica's sum / the example count of all replicas (all-reduced).
            loss = losses.compute_global_loss(per_example)
            loss += losses.scale_regularization_loss(model.losses)  # once over replicas
        gradients = tape.gradient(loss, model.trainable_variables)
        # Keras sums the gradients over replicas here.
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=False))
        return loss

    @tf.function
    def train_step(x, y):
        per_replica_loss = strategy.run(replica_step, args=(x, y))
        return strategy.reduce("SUM", per_replica_loss, axis=None)  # the global mean

    for epoch in range(epochs):
        for x_batch, y_batch in strategy.experimental_distribute_dataset(dataset):
            loss = train_step(x_batch, y_batch)
        print(f"epoch {epoch}: loss of the last step {float(loss):.5f}")
    return model


if __name__ == "__main__":
    train(tf.distribute.MirroredStrategy())
