"""`compute_global_loss`: the global mean of docs/design.md for a user's own loop.

    L = (1 / G) * sum_i w_i * l_i

Each replica returns `sum over its examples of w_i l_i / G`; gradients are then SUMMED
across replicas, so that N replicas with global batch B give the gradient of one device
with batch B, a short last batch and empty replicas included. The arithmetic is that of
`losses/global_mean.py`, which the trainer's step uses too.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

from focal_dist.distribute.base import Backend
from focal_dist.distribute.resolve import resolve_backend
from focal_dist.losses import global_mean
from focal_dist.losses._numerics import compute_dtype


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


def _check_positive(name: str, value) -> None:
    if value is None or isinstance(value, tf.Tensor):
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0:
        raise ValueError(f"{name} must be a positive number or None, got {value!r}")


def compute_global_loss(
    per_example_loss,
    sample_weight=None,
    global_batch_size=None,
    *,
    mask=None,
    normalizer=None,
    normalizer_floor=None,
    backend: Backend | tf.distribute.Strategy | str | None = None,
) -> tf.Tensor:
    r"""This replica's share of the global mean loss.

        loss_r = sum_{i in replica r} w_i m_i l_i / G

    so that sum_r loss_r = L, the single-device loss of the whole global batch, once the
    gradients are SUMMED over replicas. G is, in order of precedence:

    * `global_batch_size`, when given: a fixed denominator, no collective;
    * with `normalizer`: G = max(sum_r n_r, normalizer_floor), where n_r is this
      replica's own normaliser (RetinaNet: its number of positive anchors) and the sum
      is all-reduced over every replica, so N replicas divide by the count one device
      would see. RetinaNet's max(N, 1) is `normalizer_floor=1`: the floor is applied to
      the global sum, never per replica (a per-replica max(n_r, 1) changes the loss);
    * otherwise the all-reduced count of examples (each element of `per_example_loss`
      is one example, or one pixel; with `mask`, only those where it is true), so a short
      last batch, an empty replica and ignored pixels are right.

    When G = 0 (every example masked out, no positives and no floor) the loss is 0, not
    NaN.

    Works eagerly, in tf.function, inside `strategy.run` (MirroredStrategy,
    MultiWorkerMirroredStrategy) and under Horovod; on one device it is the plain
    weighted mean (or sum / normaliser).

    Args:
      per_example_loss: losses l_i, shape [B] or [B, ...] (e.g. per pixel [B, H, W]).
      sample_weight: w_i, broadcastable to per_example_loss ([B] is expanded); 1 if None.
      global_batch_size: G as a positive number, or None to count it. A scalar tensor is
        taken as G too (the trainer all-reduces the count before the forward pass, so
        that the XLA-compiled model and loss contain no collective).
      mask: m_i, booleans or 0/1 of per_example_loss's shape; examples with m_i = 0 add
        nothing and are not counted. Defaults to the Keras mask that
        `SparseCategoricalFocalCrossentropy(ignore_class=...)` attaches, if any.
      normalizer: this replica's local normaliser n_r (a number or scalar tensor, >= 0),
        all-reduced with SUM to give G.
      normalizer_floor: with `normalizer`, the least G (RetinaNet: 1).
      backend: whose replicas are summed over: None for the tf.distribute strategy in
        scope (its replica context), a `tf.distribute.Strategy`, a
        `focal_dist.distribute.Backend`, or "horovod" (`hvd.allreduce(op=hvd.Sum)`).

    Returns:
      A scalar in float32 (float64 for float64 losses).
    """
    _check_positive("global_batch_size", global_batch_size)
    if normalizer is not None and global_batch_size is not None:
        raise ValueError(
            "pass either global_batch_size (a fixed denominator) or normalizer (this "
            f"replica's count, all-reduced), not both; got global_batch_size="
            f"{global_batch_size!r} and normalizer={normalizer!r}"
        )
    if normalizer_floor is not None:
        if normalizer is None:
            raise ValueError(
                f"normalizer_floor={normalizer_floor!r} needs normalizer= (this replica's "
                "count); the example count is never floored"
            )
        _check_positive("normalizer_floor", normalizer_floor)
    if (
        normalizer is not None
        and not isinstance(normalizer, tf.Tensor)
        and (isinstance(normalizer, bool) or not isinstance(normalizer, numbers.Real))
    ):
        raise ValueError(f"normalizer must be a number or a scalar tensor, got {normalizer!r}")
    if normalizer is not None and isinstance(normalizer, numbers.Real) and normalizer < 0:
        raise ValueError(f"normalizer must be >= 0, got {normalizer!r}")
    # Resolved before any tensor work, so that a bad backend fails first.
    resolved = None if global_batch_size is not None else resolve_backend(backend)
    if mask is None:
        mask = getattr(per_example_loss, "_keras_mask", None)
    loss = tf.convert_to_tensor(per_example_loss)
    loss = tf.cast(loss, compute_dtype(loss.dtype))
    if sample_weight is not None:
        loss = loss * _broadcast_like(sample_weight, loss, "sample_weight")
    example_mask = _broadcast_like(mask, loss, "mask") if mask is not None else None
    local_sum, local_count = global_mean.masked_sum_and_count(loss, example_mask)
    if global_batch_size is not None:
        # A fixed denominator: no collective (a count tensor of 0 still gives 0).
        return global_mean.share(local_sum, tf.cast(global_batch_size, loss.dtype))
    if normalizer is not None:
        normalizer = tf.convert_to_tensor(normalizer)
        if normalizer.shape.rank not in (None, 0):
            raise ValueError(
                f"normalizer must be a scalar (this replica's count), got shape {normalizer.shape}"
            )
        local_count = tf.cast(normalizer, loss.dtype)
    floors = [normalizer_floor] if normalizer_floor is not None else None
    denominator = global_mean.denominators(local_count, resolved.all_reduce_sum, floors)
    return global_mean.share(local_sum, denominator)


def scale_regularization_loss(
    regularization_losses, backend: Backend | tf.distribute.Strategy | str | None = None
):
    r"""Sum of regularization losses divided by the replica count R.

    Added to every replica's `compute_global_loss`, whose gradients are summed across
    replicas, it is then counted exactly once: sum_r (reg / R) = reg. `backend` as in
    `compute_global_loss` (None: the strategy in scope).
    """
    if isinstance(regularization_losses, list | tuple):
        total = (
            tf.add_n([tf.convert_to_tensor(x) for x in regularization_losses])
            if (regularization_losses)
            else tf.constant(0.0)
        )
    else:
        total = tf.convert_to_tensor(regularization_losses)
    replicas = resolve_backend(backend).num_replicas_in_sync
    return total / tf.cast(replicas, total.dtype)
