"""Horovod's gradient tape and variable broadcast for Keras 3 models, summing by construction.

Horovod users write their TF2 loop with `hvd.DistributedGradientTape` and
`hvd.broadcast_variables`. Under Keras 3, Horovod 0.28.1 fails on Keras variables
(`'Variable' object has no attribute 'ref'` in `gradient`, `'SymbolicTensor' object has no
attribute 'assign'` in `broadcast_variables`), and its default `op=hvd.Average` divides
the summed gradient by `hvd.size()`. With `compute_global_loss`, each rank's loss is its
share of the global mean, so the gradient must be SUMMED: Average would train with
1/size of the single-device step (0.5x at `-np 2`). These wrappers take Keras variables
and sum:

    tape = horovod_tape.DistributedGradientTape(tape)         # op=hvd.Sum
    gradients = tape.gradient(loss, model.trainable_variables)
    horovod_tape.broadcast_variables(model.variables + optimizer.variables, root_rank=0)

`op=hvd.Average` (or any op but Sum) is refused with an explanation.
"""

from __future__ import annotations

import tensorflow as tf


def _hvd():
    import horovod.tensorflow as hvd

    return hvd


def as_tf_variable(variable):
    """The tf.Variable behind a Keras 3 variable (Horovod needs `ref()` and `assign`)."""
    if isinstance(variable, tf.Variable):
        return variable
    inner = getattr(variable, "value", None)
    if isinstance(inner, tf.Variable):
        return inner
    raise ValueError(
        f"expected a tf.Variable or a Keras variable, got {type(variable).__name__} "
        f"{variable!r:.100}"
    )


def broadcast_variables(variables, root_rank: int = 0) -> None:
    """Assigns rank `root_rank`'s values to `variables` on every rank (Keras 3 or TF)."""
    _hvd().broadcast_variables([as_tf_variable(v) for v in variables], root_rank=root_rank)


class DistributedGradientTape:
    """`hvd.DistributedGradientTape(tape, op=hvd.Sum)` that accepts Keras 3 variables.

    `gradient(loss, sources)` returns the gradients SUMMED over ranks, in the structure
    of `sources`: with `loss = compute_global_loss(..., backend="horovod")` they are the
    gradients of the single-process loss over the global batch.

    Args:
      tape: the `tf.GradientTape` that recorded the forward pass.
      op: only `hvd.Sum` (the default here) is accepted. Horovod's own default,
        `hvd.Average`, divides the sum by the number of ranks: right only for a loss that
        is each rank's local mean with equal local batches, and 1/size of the right step
        with `compute_global_loss`. It is refused, not silently rescaled.
      **kwargs: passed to `hvd.DistributedGradientTape` (compression, sparse_as_dense,
        ...).
    """

    def __init__(self, tape: tf.GradientTape, *, op=None, **kwargs):
        hvd = _hvd()
        if op is not None and op != hvd.Sum:
            name = {hvd.Average: "hvd.Average", hvd.Adasum: "hvd.Adasum"}.get(op, repr(op))
            raise ValueError(
                f"op={name}: focal_dist's losses are each rank's share of the global mean "
                "(compute_global_loss), so the gradients must be summed (op=hvd.Sum); "
                "Average would divide them by hvd.size() and train 1/size as far as one "
                "process on the whole batch. Leave op unset."
            )
        self._tape = hvd.DistributedGradientTape(tape, op=hvd.Sum, **kwargs)

    def gradient(self, target, sources, output_gradients=None):
        flat = [as_tf_variable(v) for v in tf.nest.flatten(sources)]
        gradients = self._tape.gradient(target, flat, output_gradients=output_gradients)
        return tf.nest.pack_sequence_as(sources, list(gradients))

    def __getattr__(self, name):
        return getattr(self._tape, name)
