"""One rank of the Horovod loss tests (run by `horovodrun -np 2`); writes rank<r>.json.

Every rank knows the whole global batch, so it computes the single-process reference
(the loss and gradient of one process on all of it) itself and compares with what the
ranks produce together from their uneven shards.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import horovod.tensorflow as hvd
import keras
import numpy as np
import tensorflow as tf

from focal_dist import losses
from focal_dist.distribute import horovod_tape

SHARDS = [slice(0, 7), slice(7, 10)]  # rank 0 holds 7 examples, rank 1 holds 3


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4)).astype("f4")
    y = (rng.random((10, 2)) < 0.3).astype("f4")
    return x, y


def model_with_seed(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])


def gradient(model, x, y, tape_fn, sources):
    loss_fn = losses.BinaryFocalCrossentropy(from_logits=True, reduction="none")
    with tf.GradientTape() as tape:
        loss = losses.compute_global_loss(loss_fn(y, model(x)), backend="horovod")
    return [g.numpy() for g in tape_fn(tape).gradient(loss, sources)]


def main():
    out = sys.argv[1]
    hvd.init()
    rank = hvd.rank()
    result = {"rank": rank, "size": hvd.size()}
    x, y = data()
    local_x, local_y = x[SHARDS[rank]], y[SHARDS[rank]]

    # 1. Each rank starts from its own random weights; the broadcast makes them rank 0's.
    model = model_with_seed(100 + rank)
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.build(model.trainable_variables)
    rank0 = model_with_seed(100)

    def max_diff(a, b):
        return max(float(np.abs(u - v).max()) for u, v in zip(a, b, strict=True))

    result["before_broadcast_max_diff"] = max_diff(model.get_weights(), rank0.get_weights())
    horovod_tape.broadcast_variables(model.variables + optimizer.variables, root_rank=0)
    result["broadcast_max_diff"] = max_diff(model.get_weights(), rank0.get_weights())

    # 2. The single-process gradient of the whole batch, computed here.
    with tf.GradientTape() as tape:
        full = tf.reduce_mean(losses.binary_focal_crossentropy(y, model(x), from_logits=True))
    reference = [g.numpy() for g in tape.gradient(full, model.trainable_variables)]

    variables = model.trainable_variables
    summed = gradient(model, local_x, local_y, horovod_tape.DistributedGradientTape, variables)
    # Horovod's own tape, default op=Average (it needs the tf.Variables under Keras 3).
    plain_variables = [v.value for v in variables]
    averaged = gradient(model, local_x, local_y, hvd.DistributedGradientTape, plain_variables)
    result["sum_max_rel_error"] = max(
        float(np.abs(s - r).max() / np.abs(r).max()) for s, r in zip(summed, reference, strict=True)
    )
    result["average_ratio"] = float(
        np.median(
            np.concatenate([(a / r).ravel() for a, r in zip(averaged, reference, strict=True)])
        )
    )

    # 3. op=Average is refused by the wrapper, naming the fix.
    try:
        horovod_tape.DistributedGradientTape(tf.GradientTape(), op=hvd.Average)
        result["average_refused"] = ""
    except ValueError as error:
        result["average_refused"] = str(error)

    # 4. One optimizer step in a tf.function, as a Horovod user's loop runs it.
    @tf.function
    def train_step(features, labels):
        loss_fn = losses.BinaryFocalCrossentropy(from_logits=True, reduction="none")
        with tf.GradientTape() as tape:
            loss = losses.compute_global_loss(loss_fn(labels, model(features)), backend="horovod")
        tape = horovod_tape.DistributedGradientTape(tape)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=False))
        return hvd.allreduce(loss, op=hvd.Sum)

    result["step_loss"] = float(train_step(local_x, local_y))
    result["full_loss"] = float(full)
    # The same Adam step taken by one process on the whole batch.
    single_optimizer = keras.optimizers.Adam(0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(losses.binary_focal_crossentropy(y, rank0(x), from_logits=True))
    grads = tape.gradient(loss, rank0.trainable_variables)
    single_optimizer.apply_gradients(zip(grads, rank0.trainable_variables, strict=False))
    result["step_weights_max_diff"] = max_diff(model.get_weights(), rank0.get_weights())
    result["step_moved"] = max_diff(model.get_weights(), model_with_seed(100).get_weights())

    # 5. A RetinaNet-style normaliser: 1 positive anchor on rank 0, 12 on rank 1.
    per_anchor = tf.constant([[0.5, 2.0, 1.0], [0.25, 3.0, 4.0]][rank])
    positives = [1.0, 12.0][rank]
    share = losses.compute_global_loss(
        per_anchor, normalizer=positives, normalizer_floor=1.0, backend="horovod"
    )
    result["normalized_loss"] = float(hvd.allreduce(share, op=hvd.Sum))

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
