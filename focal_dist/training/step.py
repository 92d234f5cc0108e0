"""The step math: one global training step and one evaluation step, on every backend.

One global training step (the global mean of docs/design.md):

    m_r       = mean_{i in replica r} w_i l_i over its n_r examples   # per replica, XLA-safe
    [g, G, S] = all_reduce_sum([n_r grad m_r, n_r, n_r m_r])          # SUM: the ONE collective
    loss      = S / G
    g         = g / G + grad(reg)                                     # reg: model.losses
    clip g by its global norm, apply

`grad(reg)` is the same on every replica (the variables are), so it is added locally
after the collective instead of being all-reduced: regularisation is counted once and
never divided by G. Differentiating each replica's mean (not its sum) keeps values small
enough for float16 under mixed-precision loss scaling.

Why one collective per step, and why it cannot race under Horovod: inside the
`tf.while_loop` of `train_loop`, every iteration issues its collective under the same
op name. Horovod aborts if two collectives with the same name are in flight at once. The
single all-reduce of iteration k+1 takes gradients computed from variables that
iteration k's `apply_gradients` wrote, and iteration k's update consumes iteration k's
all-reduce result, so the collective of iteration k+1 cannot start before that of
iteration k has finished. A collective whose result nothing in the next iteration waits
for (a separate all-reduce of the loss, or of the example count before the forward
pass) has no such ordering, and overlapped: that is the race this layout removes.
The read of the next batch, which overlaps the step, issues no collective (training
datasets repeat, so not even MultiWorkerMirrored's end-of-data check runs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import tensorflow as tf

from focal_dist.distribute import Backend
from focal_dist.distribute.strategy_backend import StrategyBackend
from focal_dist.training import metrics as metrics_lib


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """How a step is computed (not what is trained).

    Attributes:
      per_replica_batch_size: every replica batch is padded to this many rows, the
        padding masked out of the loss, the counts and the metrics (None: no padding).
      clip_global_norm: clip the summed gradient to this global norm; 0 turns it off.
      jit_compile: compile with XLA: the whole update (forward, backward, clipping,
        optimizer) on one replica without collectives, else the per-replica forward
        and backward pass.
      mixed_precision: the optimizer is a LossScaleOptimizer; scale the loss.
    """

    per_replica_batch_size: int | None = None
    clip_global_norm: float = 0.0
    jit_compile: bool = False
    mixed_precision: bool = False


class TrainStep:
    """Builds the `tf.function`s that run training and evaluation steps under `backend`.

    `per_example_loss(labels, logits)` returns l_i (weights w_i already applied), shape
    [B]; `probabilities_and_targets(labels, logits)` returns [B, C] probabilities and 0/1
    targets for the metrics. The model maps features to logits.
    """

    def __init__(
        self,
        *,
        model,
        optimizer,
        backend: Backend,
        per_example_loss: Callable,
        probabilities_and_targets: Callable,
        num_outputs: int,
        options: StepOptions,
    ):
        self.model = model
        self.optimizer = optimizer
        self.backend = backend
        self.per_example_loss = per_example_loss
        self.probabilities_and_targets = probabilities_and_targets
        self.num_outputs = num_outputs
        self.options = options
        # What XLA compiles (docs/benchmarks.md, "XLA cluster boundaries"):
        # - one replica, no collective in the step (a tf.distribute strategy with one
        #   replica in sync): the whole update from the batch on, padding and optimizer
        #   included, as one cluster, as Keras's fit(jit_compile=True) does;
        # - several replicas, or Horovod: only the forward and backward pass. Collectives
        #   stay outside XLA, and MirroredStrategy's variable update (a merge_call that
        #   writes every device's copy) cannot be compiled on one device.
        # Without XLA the model and loss are inlined in the step (a nested function call
        # costs ~5% of a small step).
        self.whole_step_compiled = options.jit_compile and _single_replica_without_collective(
            backend
        )
        self._forward_backward = (
            tf.function(self._local_forward_backward, jit_compile=True)
            if options.jit_compile and not self.whole_step_compiled
            else self._local_forward_backward
        )
        self._update = (
            tf.function(self._padded_update, jit_compile=True)
            if self.whole_step_compiled
            else self._padded_update
        )
        self._loop = tf.function(self._train_loop)
        self._one_step = tf.function(self._train_loop_one_step)
        self.eval_step = tf.function(self._eval_step)

    # --- per replica, no collective (XLA-compilable) ----------------------------------
    def _padded(self, batch):
        """(features, labels, valid): the replica batch padded to a fixed row count.

        A short last global batch leaves some replicas few or no examples (on purpose:
        every distribution sees the same examples per step). Padding to
        `per_replica_batch_size` rows with `valid` = 0 keeps every shape static (one
        XLA compilation) and never hands a layer an empty batch (oneDNN's Conv2D returns
        a wrong shape for [0, H, W, C]). Padding rows add nothing to the loss, the
        count or the metrics. Layers that use batch statistics (BatchNormalization in
        training) do see the zero rows of the one short batch per epoch.
        """
        features, labels = batch
        count = tf.shape(labels)[0]
        size = self.options.per_replica_batch_size
        if size is None:
            return features, labels, tf.ones([count], tf.float32)

        def pad(tensor):
            paddings = [[0, size - count]] + [[0, 0]] * (tensor.shape.rank - 1)
            padded = tf.pad(tensor, paddings)
            return tf.ensure_shape(padded, [size, *tensor.shape[1:]])

        valid = tf.sequence_mask(count, size, dtype=tf.float32)
        return tf.nest.map_structure(pad, features), pad(labels), valid

    def _local_forward_backward(self, features, labels, valid):
        """(m_r, grad m_r, grad reg); grad reg is None without regularisation losses."""
        variables = self.model.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            logits = tf.cast(self.model(features, training=True), tf.float32)
            per_example = _masked(self.per_example_loss(labels, logits), valid)
            local_mean = tf.math.divide_no_nan(tf.reduce_sum(per_example), tf.reduce_sum(valid))
            regularization = tf.add_n(self.model.losses) if self.model.losses else None
            scaled_mean, scaled_regularization = local_mean, regularization
            if self.options.mixed_precision:
                scaled_mean = self.optimizer.scale_loss(local_mean)
                if regularization is not None:
                    scaled_regularization = self.optimizer.scale_loss(regularization)
        gradients = tape.gradient(scaled_mean, variables)
        regularization_gradients = (
            tape.gradient(scaled_regularization, variables) if regularization is not None else None
        )
        del tape
        return local_mean, gradients, regularization_gradients

    # --- one replica's part of a global step -----------------------------------------
    def _replica_step(self, batch):
        return self._update(batch)

    def _padded_update(self, batch):
        # With the whole update compiled (one replica), the padding is compiled with it:
        # XLA sees the batch's real shape, so a full batch pads nothing and its mask is a
        # constant, where a dozen ops around each launch cost ~70 µs of a ~650 µs MLP
        # step (docs/benchmarks.md). The epoch's short batch compiles once more, once.
        # Otherwise only the forward and backward pass can be compiled and the padded
        # shape is what keeps it to one compilation.
        return self._local_update(*self._padded(batch))

    def _local_update(self, features, labels, valid):
        local_count = tf.reduce_sum(valid)
        local_mean, gradients, regularization_gradients = self._forward_backward(
            features, labels, valid
        )
        # Distribution: the step's one SUM all-reduce carries the gradients, the example
        # count G and the loss; grad (sum_i w_i l_i / G) = (sum_r n_r grad m_r) / G.
        *gradients, global_count, loss_sum = self.backend.aggregate_gradients(
            [*(g * local_count for g in gradients), local_count, local_mean * local_count]
        )
        gradients = [tf.math.divide_no_nan(g, global_count) for g in gradients]
        if regularization_gradients is not None:
            gradients = [
                g + r if r is not None else g
                for g, r in zip(gradients, regularization_gradients, strict=True)
            ]
        loss = tf.math.divide_no_nan(loss_sum, global_count)
        norm = tf.linalg.global_norm(gradients)
        if self.options.clip_global_norm:
            gradients, _ = tf.clip_by_global_norm(
                gradients, self.options.clip_global_norm, use_norm=norm
            )
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables, strict=True))
        return loss, norm

    def train_loop(self, iterator, num_steps):
        """Runs `num_steps` (>= 1) global steps; returns their losses [num_steps] and the
        last norm. A call of one step has nothing to overlap and runs without the loop
        (the loop's structure cost 10-20% of a one-step call under Horovod with MPI)."""
        if tf.get_static_value(num_steps) == 1:
            return self._one_step(iterator)
        return self._loop(iterator, num_steps)

    def _train_loop_one_step(self, iterator):
        loss, norm = self.backend.run(self._replica_step, args=(next(iterator),))
        local = self.backend.local_results
        return tf.reshape(local(loss)[0], [1]), local(norm)[0]

    def _train_loop(self, iterator, num_steps):
        """The loop of `train_loop` for calls of several steps.

        Step i trains on the batch in hand while the iterator reads step i+1's: the two
        touch different resources (the variables, the iterator), so TensorFlow runs them
        side by side instead of one after the other, as Keras's fit does (~8% of a small
        XLA step, docs/benchmarks.md). The call reads exactly `num_steps` batches (none
        after the last step), so the input position a checkpoint records after it is
        the one of a loop that reads each batch just before its step.
        """

        def body(i, batch, step_losses, norm):
            loss, norm = self.backend.run(self._replica_step, args=(batch,))
            following = tf.cond(i + 1 < num_steps, lambda: next(iterator), lambda: batch)
            # The loss and norm came back from the all-reduce: every replica holds the
            # global value, so the first local one is read, with no further collective.
            step_losses = step_losses.write(i, self.backend.local_results(loss)[0])
            return i + 1, following, step_losses, self.backend.local_results(norm)[0]

        _, _, step_losses, norm = tf.while_loop(
            lambda i, *_: i < num_steps,
            body,
            (
                tf.constant(0),
                next(iterator),
                tf.TensorArray(tf.float32, size=num_steps),
                tf.constant(0.0),
            ),
            # The epoch's short batch has fewer rows: the carried batch's shape is the
            # iterator's (unknown batch dimension where batches differ).
            shape_invariants=(tf.TensorShape([]), iterator.element_spec, None, tf.TensorShape([])),
        )
        return step_losses.stack(), norm

    # --- evaluation ---------------------------------------------------------------------
    def _eval_replica(self, batch):
        features, labels, valid = self._padded(batch)
        logits = tf.cast(self.model(features, training=False), tf.float32)
        per_example = _masked(self.per_example_loss(labels, logits), valid)
        probabilities, targets = self.probabilities_and_targets(labels, logits)
        positives, negatives = metrics_lib.bucket_counts(probabilities, targets, weights=valid)
        count = tf.reduce_sum(valid)
        # One flat vector, so one collective per eval step (several concurrent Horovod
        # all-reduces in one graph were seen to stall on 2 cores).
        return tf.concat(
            [
                tf.reshape(positives, [-1]),
                tf.reshape(negatives, [-1]),
                [tf.reduce_sum(per_example), count],
            ],
            axis=0,
        )

    def _eval_step(self, batch):
        """[positives buckets, negatives buckets, loss sum, count], summed over replicas."""
        return self.backend.reduce_sum(self.backend.run(self._eval_replica, args=(batch,)))

    @property
    def eval_vector_size(self) -> int:
        """Length of the vector `eval_step` returns."""
        return 2 * self.num_outputs * metrics_lib.NUM_BUCKETS + 2


def _single_replica_without_collective(backend: Backend) -> bool:
    """True for a tf.distribute strategy with one replica in sync: its all-reduces are
    the identity (no collective op is built), so the whole step can be one XLA cluster."""
    return isinstance(backend, StrategyBackend) and backend.num_replicas_in_sync == 1


def _masked(per_example, valid):
    # tf.where, not a product: a padding row whose loss is inf or NaN still adds 0.
    return tf.where(valid > 0, per_example, tf.zeros_like(per_example))
