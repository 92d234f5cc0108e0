r"""Batch statistics over the real rows of a padded batch, optionally over every replica.

The step pads a short replica batch with zero rows (`valid` = 0) to a fixed size
(training/step.py, `_padded`). Keras's BatchNormalization would take those rows into
its batch mean and variance, and through them into every real row's output and into
the moving statistics. The step therefore runs its training forward pass inside

    with batch_norm.rows(model, valid, backend, after=denominators):
        logits = model(features, training=True)

On entry, every `keras.layers.BatchNormalization` of the model gets (once, at trace
time) moments computed from the rows where `valid` is 1. Per channel, over the batch
and spatial axes (a Keras mask from the layer before, if any, multiplies `valid`):

    n  = sum valid,   S1 = sum valid * x,   S2 = sum valid * x^2
    [n, S1, S2] <- all_reduce_sum([n, S1, S2])   when the layer is `synchronized`
    mean = S1 / n,    var = max(S2 / n - mean^2, 0)

and, where n = 0 (a replica of padding only, unsynchronized), the moving statistics,
so that Keras's moving-average update leaves them unchanged. Outside the context (the
user's own `fit`, serving) a layer behaves as Keras's.

`synchronized` is Keras's own flag (`BatchNormalization(synchronized=True)`, or
`synchronize(model)` for `model.sync_batch_norm`). Keras honours it under tf.distribute
only, and not together with a mask; here both backends sum through
`backend.all_reduce_sum` (the replica context's all-reduce, or Horovod's
`allreduce(op=Sum)`), one collective per layer (count, sum and sum of squares per channel,
and the ordering values). A synchronized layer
sees the global batch: N replicas compute the statistics one device computes on the
whole batch, so its outputs, moving statistics and gradients match one device's (the
all-reduce's gradient is the all-reduce of the upstream gradient, which is the sum over
replicas that d(loss)/d(S) is). An unsynchronized layer normalises each replica's real
rows by their own statistics: unlike one device's, by design.

Why a collective inside the forward pass cannot race under Horovod, whose collectives
carry the same op names in every iteration of the step's `tf.while_loop` (two in
flight under one name abort the job): call N_k^j layer j's collective in iteration k.
Within an iteration N^{j+1} takes layer j's output, so the N^j run one after another.
Across iterations, N_{k+1}^j is handed data that exists only after every collective of
iteration k: with `after` (the step's denominators, the result of its counts'
collective C_{k+1}, which carries iteration k's gradient norm and so follows every
gradient bucket of k, which follow every N_k and their gradients) it rides in the
vector; and always, the layer's moving mean as read in iteration k+1, written by
iteration k's update of that layer from N_k^j's result. Horovod's ops are stateless and
Grappler folds an all-reduce of a constant; these sums are of the batch, and the
backend's `all_reduce_sum` keeps even a constant live (distribute/horovod_backend.py).

With XLA, collectives stay outside compiled code: a synchronized layer on several
replicas cannot be compiled (training/config_check/ refuses that combination).
"""

from __future__ import annotations

import contextlib
import threading

import keras
import tensorflow as tf

_STATE = threading.local()  # MirroredStrategy traces each replica in its own thread.
_MARK = "_focal_dist_row_moments"


def batch_norm_layers(model) -> list:
    """Every BatchNormalization layer of `model`, nested models included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def synchronize(model) -> int:
    """Makes every BatchNormalization layer of `model` synchronized (statistics of the
    global batch); returns how many there are."""
    layers = batch_norm_layers(model)
    for layer in layers:
        layer.synchronized = True
    return len(layers)


def install(model) -> None:
    """Gives every BatchNormalization layer the row-masked moments (idempotent)."""
    for layer in batch_norm_layers(model):
        if not getattr(layer, _MARK, False):
            if layer.renorm:
                raise ValueError(
                    f"BatchNormalization layer {layer.name!r} uses renorm, whose statistics "
                    "focal_dist cannot mask; set renorm=False"
                )
            object.__setattr__(layer, "_moments", _row_moments(layer))
            object.__setattr__(layer, _MARK, True)


@contextlib.contextmanager
def rows(model, valid, backend=None, *, after=None):
    """The context of a training forward pass over a batch whose real rows are `valid`.

    Args:
      model: the model about to be called (its layers are installed on first entry).
      valid: [B] 0/1, the real rows of the (padded) batch.
      backend: the focal_dist Backend whose `all_reduce_sum` synchronized layers use;
        None: synchronized layers use this replica's rows only.
      after: a tensor that orders the layers' collectives after it (the step's
        denominators); see the module docstring.
    """
    install(model)
    previous = getattr(_STATE, "active", None)
    _STATE.active = (valid, backend, after)
    try:
        yield
    finally:
        _STATE.active = previous


def _row_moments(layer):
    keras_moments = layer._moments

    def moments(inputs, mask):
        active = getattr(_STATE, "active", None)
        if active is None:
            return keras_moments(inputs, mask)
        valid, backend, after = active
        return _masked_moments(layer, inputs, mask, valid, backend, after)

    return moments


def _masked_moments(layer, inputs, mask, valid, backend, after):
    rank = inputs.shape.rank
    weight = tf.reshape(tf.cast(valid, inputs.dtype), [-1] + [1] * (rank - 1))
    if mask is not None:
        weight = weight * tf.expand_dims(tf.cast(mask, inputs.dtype), -1)
    weight = tf.broadcast_to(weight, tf.shape(inputs))
    axes = layer._reduction_axes
    count = tf.reduce_sum(weight, axis=axes)
    first = tf.reduce_sum(weight * inputs, axis=axes)
    second = tf.reduce_sum(weight * tf.square(inputs), axis=axes)
    moving_mean = tf.cast(layer.moving_mean, inputs.dtype)
    moving_variance = tf.cast(layer.moving_variance, inputs.dtype)
    if layer.synchronized and backend is not None:
        width = first.shape[0]
        # The order: the moving mean as read in this iteration (and `after`) ride along,
        # unused, so this collective follows the previous iteration's (module docstring).
        order = [tf.reshape(tf.reduce_sum(moving_mean), [1])]
        if after is not None:
            order.append(tf.reshape(tf.reduce_sum(tf.cast(after, inputs.dtype)), [1]))
        summed = backend.all_reduce_sum(tf.concat([count, first, second, *order], axis=0))
        count, first, second = (summed[i * width : (i + 1) * width] for i in range(3))
    mean = tf.math.divide_no_nan(first, count)
    variance = tf.maximum(tf.math.divide_no_nan(second, count) - tf.square(mean), 0.0)
    empty = count <= 0
    return tf.where(empty, moving_mean, mean), tf.where(empty, moving_variance, variance)
