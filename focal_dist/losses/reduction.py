"""The global mean of docs/design.md: one loss value per global step over all replicas.

    L = (1 / G) * sum_i w_i * l_i

Each replica returns `sum over its examples of w_i l_i / G`; gradients are then SUMMED
across replicas, so that N replicas with global batch B give the gradient of one device
with batch B, a short last batch and empty replicas included.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

from focal_dist.distribute.base import Backend
from focal_dist.losses.focal import compute_dtype


def _all_reduce_sum(value: tf.Tensor, backend) -> tf.Tensor:
    if backend is None:
        if tf.distribute.in_cross_replica_context() and tf.distribute.has_strategy():
            strategy = tf.distribute.get_strategy()
            if strategy.num_replicas_in_sync > 1:
                raise ValueError(
                    "compute_global_loss with global_batch_size=None needs a replica "
                    f"context: call it inside strategy.run, not in the cross-replica "
                    f"context of {type(strategy).__name__}"
                )
            return value
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return value
        return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
    if backend == "horovod":
        import horovod.tensorflow as hvd

        return hvd.allreduce(value, op=hvd.Sum)  # Sum, not Horovod's default Average.
    if isinstance(backend, Backend):
        return backend.all_reduce_sum(value)
    raise ValueError(
        f"backend must be None (tf.distribute), 'horovod' or a focal_dist.distribute."
        f"Backend, got {backend!r}"
    )


def _broadcast_like(value, target: tf.Tensor, name: str) -> tf.Tensor:
    value = tf.cast(value, target.dtype)
    if value.shape.rank is not None and target.shape.rank is not None:
        while value.shape.rank > target.shape.rank and value.shape[-1] == 1:
            value = tf.squeeze(value, -1)
        while value.shape.rank < target.shape.rank:
            value = tf.expand_dims(value, -1)
        try:
            tf.broadcast_static_shape(value.shape, target.shape)
        except ValueError:
            raise ValueError(
                f"{name} of shape {value.shape} does not broadcast to per_example_loss of "
                f"shape {target.shape}"
            ) from None
    return tf.broadcast_to(value, tf.shape(target))


def compute_global_loss(
    per_example_loss,
    sample_weight=None,
    global_batch_size=None,
    *,
    mask=None,
    backend: Backend | str | None = None,
) -> tf.Tensor:
    r"""This replica's share of the global mean loss.

        loss_r = sum_{i in replica r} w_i m_i l_i / G,   G = sum over all replicas of sum_i m_i

    so that sum_r loss_r = L, the single-device mean over the global batch. G is
    `global_batch_size` when given; otherwise the all-reduced count of examples in this
    step (each element of `per_example_loss` is one example; with `mask`, only those
    where it is true), so a short last batch and an empty replica are right. When every
    example of the step is masked out, G = 0 and the loss is 0, not NaN.

    Works eagerly, in tf.function, and inside `strategy.run` (MirroredStrategy,
    MultiWorkerMirroredStrategy); on one device it is the plain weighted mean.

    Args:
      per_example_loss: losses l_i, shape [B] or [B, ...].
      sample_weight: w_i, broadcastable to per_example_loss ([B] is expanded); 1 if None.
      global_batch_size: G as a positive number, or None to count it. A scalar tensor is
        taken as G too (the trainer all-reduces the count before the forward pass, so
        that the XLA-compiled model and loss contain no collective).
      mask: m_i, booleans or 0/1 of per_example_loss's shape; examples with m_i = 0 add
        nothing and are not counted. Defaults to the Keras mask that
        `SparseCategoricalFocalCrossentropy(ignore_class=...)` attaches, if any.
      backend: None for tf.distribute (the current replica context), "horovod" for
        `hvd.allreduce(op=hvd.Sum)`, or a `focal_dist.distribute.Backend`.

    Returns:
      A scalar in float32 (float64 for float64 losses).
    """
    if (global_batch_size is not None and not isinstance(global_batch_size, tf.Tensor)) and (
        isinstance(global_batch_size, bool)
        or not isinstance(global_batch_size, numbers.Real)
        or global_batch_size <= 0
    ):
        raise ValueError(
            f"global_batch_size must be a positive number or None, got {global_batch_size!r}"
        )
    if mask is None:
        mask = getattr(per_example_loss, "_keras_mask", None)
    loss = tf.convert_to_tensor(per_example_loss)
    loss = tf.cast(loss, compute_dtype(loss.dtype))
    if sample_weight is not None:
        loss = loss * _broadcast_like(sample_weight, loss, "sample_weight")
    if mask is not None:
        example_mask = _broadcast_like(mask, loss, "mask")
        # multiply_no_nan: a masked-out example with a NaN or inf loss still adds 0.
        loss = tf.math.multiply_no_nan(loss, example_mask)
        local_count = tf.reduce_sum(example_mask)
    else:
        local_count = tf.cast(tf.size(loss), loss.dtype)
    local_sum = tf.reduce_sum(loss)
    if global_batch_size is not None:
        # divide_no_nan: a count tensor of 0 (every example masked out) gives 0.
        return tf.math.divide_no_nan(local_sum, tf.cast(global_batch_size, loss.dtype))
    global_count = _all_reduce_sum(local_count, backend)
    return tf.math.divide_no_nan(local_sum, global_count)


def scale_regularization_loss(regularization_losses, backend: Backend | str | None = None):
    r"""Sum of regularization losses divided by the replica count R.

    Added to every replica's `compute_global_loss`, whose gradients are summed across
    replicas, it is then counted exactly once: sum_r (reg / R) = reg.
    """
    if isinstance(regularization_losses, list | tuple):
        total = (
            tf.add_n([tf.convert_to_tensor(x) for x in regularization_losses])
            if (regularization_losses)
            else tf.constant(0.0)
        )
    else:
        total = tf.convert_to_tensor(regularization_losses)
    if backend is None:
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
    elif backend == "horovod":
        import horovod.tensorflow as hvd

        replicas = hvd.size()
    elif isinstance(backend, Backend):
        replicas = backend.num_replicas_in_sync
    else:
        raise ValueError(
            f"backend must be None, 'horovod' or a focal_dist.distribute.Backend, got {backend!r}"
        )
    return total / tf.cast(replicas, total.dtype)
