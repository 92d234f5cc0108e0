"""A Horovod loop with Keras 3: horovodrun -np 2 -H localhost:2 python horovod_loop.py"""

import horovod.tensorflow as hvd
import keras
import numpy as np
import tensorflow as tf

from focal_dist import losses
from focal_dist.distribute import horovod_tape

GLOBAL_BATCH = 64

hvd.init()
rng = np.random.default_rng(0)
x = rng.normal(size=(289, 8)).astype("float32")  # 4 batches of 64 and one of 33
y = (x[:, :1] + rng.normal(size=(289, 1)) > 1.5).astype("float32")
# Each rank reads its shard; together the ranks take each global batch.
dataset = (
    tf.data.Dataset.from_tensor_slices((x, y))
    .shard(hvd.size(), hvd.rank())
    .batch(GLOBAL_BATCH // hvd.size())
)

keras.utils.set_random_seed(hvd.rank())  # any start: rank 0's weights are broadcast
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(1)])
optimizer = keras.optimizers.Adam(0.01)
optimizer.build(model.trainable_variables)
horovod_tape.broadcast_variables(model.variables + optimizer.variables, root_rank=0)
loss_fn = losses.BinaryFocalCrossentropy(gamma=2.0, from_logits=True, reduction="none")


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        per_example = loss_fn(y, model(x, training=True))
        # This rank's sum / the example count of all ranks (all-reduced).
        loss = losses.compute_global_loss(per_example, backend="horovod")
    tape = horovod_tape.DistributedGradientTape(tape)  # SUMS gradients over ranks
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=False))
    return hvd.allreduce(loss, op=hvd.Sum)  # the global mean


for epoch in range(3):
    for x_batch, y_batch in dataset:
        loss = train_step(x_batch, y_batch)
    if hvd.rank() == 0:
        print(f"epoch {epoch}: loss of the last step {float(loss):.5f}")
if hvd.rank() == 0:
    model.save_weights("horovod_loop.weights.h5")
