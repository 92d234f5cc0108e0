r"""The step math: one global training step and one evaluation step, on every backend.

A task's loss is a sum of terms t (`focal_dist.tasks.LossTerm`), each with its global
denominator (losses/global_mean.py):

    L = sum_t w_t S_t / D_t,    D_t = max(sum_r n_rt, floor_t)

n_rt (replica r's valid elements of term t, or its normaliser) follows from the labels
and the padding mask alone. Two ways to sum a step over replicas, `StepOptions.allreduce`:

"overlap" (counts first, gradients in buckets during the backward pass):

    D   = max(all_reduce_sum([n_r1 .. n_rT]), floor)                  # 1: before the forward
    J_r = sum_t w_t s_rt / D_t + reg / R                              # reg: model.losses
    g   = all_reduce_sum(grad J_r), bucket by bucket as the backward pass yields them
    loss = all_reduce_sum(J_r - reg / R)                              # rides in bucket 1

"single" (one term; one collective after the backward pass, the layout before buckets):

    m_r = s_r / n_r                                                   # the local mean
    [g, G, S] = all_reduce_sum([n_r grad m_r, n_r, n_r m_r]);  D = max(G, floor)
    g = w g / D + grad(reg);  loss = w S / D

Either way clip g by its global norm, then apply. Regularisation is counted once: R
replicas each add reg / R to a summed gradient, or grad(reg), the same on every replica,
is added after the sum. With mixed precision the scaled objective is differentiated and
the LossScaleOptimizer unscales and checks the summed gradients.

Why no two collectives of the same name are ever in flight (Horovod aborts on that),
inside the `tf.while_loop` of `train_loop`, where every iteration issues its collectives
under the same op names: call C_k the counts of iteration k and B_k^j its buckets.
B_{k+1}^j takes gradients computed from the variables that iteration k's update wrote,
and that update consumes every B_k^j, so all of B_{k+1} start after all of B_k finish.
C_{k+1} has no such data path (the counts need only the next batch, which is read while
iteration k trains), so it is given one: the gradient norm of iteration k, which needs
every B_k^j, travels in C_{k+1}'s vector. C_{k+1} precedes B_{k+1} (J
needs D). In "single" the one collective of k+1 waits for update k. The read of the next
batch issues no collective (training datasets repeat, so not even MultiWorkerMirrored's
end-of-data check runs).

(About 300 lines, one file on purpose: both ways of summing a step share the padding,
the objective and the update, and the ordering argument above covers both.)
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from focal_dist.distribute import Backend
from focal_dist.losses import global_mean
from focal_dist.models import batch_norm
from focal_dist.training import allreduce
from focal_dist.training.held_out import HeldOutStep
from focal_dist.training.loss_terms import LocalTerms
from focal_dist.training.padding import pad_replica_batch

ALLREDUCE_MODES = ("single", "overlap")


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
      allreduce: "overlap" or "single" (see the module docstring).
      bucket_bytes: "overlap": gradient bytes per collective (0: one bucket).
      compression: "none", "float16" or "bfloat16": the gradients' wire dtype.
    """

    per_replica_batch_size: int | None = None
    clip_global_norm: float = 0.0
    jit_compile: bool = False
    mixed_precision: bool = False
    allreduce: str = "overlap"
    bucket_bytes: int = 4 << 20
    compression: str = "none"


class TrainStep:
    """Builds the `tf.function`s that run training and evaluation steps under `backend`.

    `loss_terms` are the task's `LossTerm`s; `evaluation` is its `Evaluation`. The model
    maps features to logits.
    """

    def __init__(self, *, model, optimizer, backend: Backend, loss_terms, evaluation, options):
        self.model = model
        self.optimizer = optimizer
        self.backend = backend
        self.terms = LocalTerms(tuple(loss_terms))
        self.evaluation = evaluation
        self.options = options
        if options.allreduce not in ALLREDUCE_MODES:
            raise ValueError(
                f"allreduce must be one of {ALLREDUCE_MODES}; got {options.allreduce!r}"
            )
        if options.allreduce == "single" and len(self.terms.terms) != 1:
            raise ValueError(
                f'allreduce="single" sums one loss term; this task has {len(self.terms.terms)} '
                f'({", ".join(self.terms.names)}): use "overlap"'
            )
        if options.compression not in allreduce.COMPRESSIONS:
            raise ValueError(
                f"compression must be one of {', '.join(allreduce.COMPRESSIONS)}; "
                f"got {options.compression!r}"
            )
        # What XLA compiles (docs/benchmarks.md, "XLA cluster boundaries"):
        # - one replica, no collective in the step (a tf.distribute strategy with one
        #   replica in sync): the whole update from the batch on, padding and optimizer
        #   included, as one cluster, as Keras's fit(jit_compile=True) does;
        # - several replicas, or Horovod: only the forward and backward pass. Collectives
        #   stay outside XLA, and MirroredStrategy's variable update (a merge_call that
        #   writes every device's copy) cannot be compiled on one device.
        self.whole_step_compiled = options.jit_compile and backend.collectives_are_identity
        compile_gradients = options.jit_compile and not self.whole_step_compiled
        self._gradients = (
            tf.function(self._local_gradients, jit_compile=True, autograph=False)
            if compile_gradients
            else self._local_gradients
        )
        self._update = (
            tf.function(self._padded_update, jit_compile=True, autograph=False)
            if self.whole_step_compiled
            else self._padded_update
        )
        self._loop = tf.function(self._train_loop, autograph=False)
        self._one_step = tf.function(self._train_loop_one_step, autograph=False)
        # Evaluation and scoring of held-out splits: the same padding and loss terms.
        self.held_out = HeldOutStep(
            model=model,
            backend=backend,
            terms=self.terms,
            evaluation=evaluation,
            pad=self._padded,
        )
        self.eval_step = self.held_out.eval_step
        self.score_step = self.held_out.score_step
        self.eval_vector_size = self.held_out.vector_size
        self.split_eval_totals = self.held_out.split_totals

    # --- per replica, no collective (XLA-compilable) ----------------------------------
    def _padded(self, batch):
        return pad_replica_batch(batch, self.options.per_replica_batch_size)

    def _objective(self, features, labels, valid, denominators):
        """(J_r without regularisation, the differentiated objective, tape)."""
        with tf.GradientTape() as tape:
            # Padding rows stay out of BatchNormalization's statistics (models/batch_norm.py).
            with batch_norm.rows(self.model, valid, self.backend, after=denominators):
                logits = tf.cast(self.model(features, training=True), tf.float32)
            sums, counts = self.terms.sums_and_counts(labels, logits, valid)
            if denominators is None:  # "single": the local mean of the one term
                data = tf.math.divide_no_nan(sums[0], counts[0])
            else:
                data = global_mean.share(sums, denominators, self.terms.weights)
            objective = data
            if denominators is not None and self.model.losses:
                # Summed over R replicas, reg / R counts once ("single" adds grad reg later).
                objective += tf.add_n(self.model.losses) / self.backend.num_replicas_in_sync
            if self.options.mixed_precision:
                objective = self.optimizer.scale_loss(objective)
        return data, counts, objective, tape

    def _local_gradients(self, features, labels, valid, denominators):
        variables = self.model.trainable_variables
        data, counts, objective, tape = self._objective(features, labels, valid, denominators)
        return data, counts, tape.gradient(objective, variables)

    def _regularization_gradients(self):
        if not self.model.losses:
            return None
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            regularization = tf.add_n(self.model.losses)
            if self.options.mixed_precision:
                regularization = self.optimizer.scale_loss(regularization)
        return tape.gradient(regularization, variables)

    # --- one replica's part of a global step -----------------------------------------
    def _replica_step(self, batch, token):
        return self._update(batch, token)

    def _padded_update(self, batch, token):
        # With the whole update compiled (one replica), the padding is compiled with it:
        # XLA sees the batch's real shape, so a full batch pads nothing and its mask is a
        # constant, where a dozen ops around each launch cost ~70 µs of a ~650 µs MLP
        # step (docs/benchmarks.md). The epoch's short batch compiles once more, once.
        features, labels, valid = self._padded(batch)
        if self.options.allreduce == "single":
            return self._single_update(features, labels, valid)
        return self._overlapped_update(features, labels, valid, token)

    def _overlapped_update(self, features, labels, valid, token):
        # Distribution: C_k, the counts' collective. The previous step's gradient norm
        # (`token`) rides along, unused: a data path that orders C_k after iteration
        # k-1's buckets (the module docstring's argument).
        local = tf.concat([self.terms.counts(labels, valid), [token]], axis=0)
        summed = self.backend.all_reduce_sum(local)
        denominators = global_mean.denominators(
            summed[:-1], lambda counts: counts, self.terms.floors
        )
        data, _, gradients = self._gradients(features, labels, valid, denominators)
        # Distribution: one SUM collective per bucket, started as each is computed.
        gradients, (loss,) = allreduce.all_reduce_in_buckets(
            self.backend,
            gradients,
            bucket_bytes=self.options.bucket_bytes,
            compression=self.options.compression,
            extra=(data,),
        )
        return loss, self._apply(gradients)

    def _single_update(self, features, labels, valid):
        local_mean, counts, gradients = self._gradients(features, labels, valid, None)
        local_count = counts[0]
        # Distribution: the step's one SUM all-reduce carries the gradients, the count n_r
        # and the loss; grad (sum_i l_i / D) = (sum_r n_r grad m_r) / D.
        *gradients, global_count, loss_sum = self.backend.aggregate_gradients(
            [*(g * local_count for g in gradients), local_count, local_mean * local_count]
        )
        term = self.terms.terms[0]
        denominator = tf.maximum(global_count, term.floor) if term.floor else global_count
        scale = tf.math.divide_no_nan(tf.constant(term.weight, tf.float32), denominator)
        gradients = [g * scale for g in gradients]
        regularization_gradients = self._regularization_gradients()
        if regularization_gradients is not None:
            gradients = [
                g + r if r is not None else g
                for g, r in zip(gradients, regularization_gradients, strict=True)
            ]
        return loss_sum * scale, self._apply(gradients)

    def _apply(self, gradients):
        norm = tf.linalg.global_norm(gradients)
        if self.options.clip_global_norm:
            gradients, _ = tf.clip_by_global_norm(
                gradients, self.options.clip_global_norm, use_norm=norm
            )
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables, strict=True))
        return norm

    # --- the loops ---------------------------------------------------------------------
    def train_loop(self, iterator, num_steps):
        """Runs `num_steps` (>= 1) global steps; returns their losses [num_steps] and the
        last norm. A call of one step has nothing to overlap and runs without the loop
        (the loop's structure cost 10-20% of a one-step call under Horovod with MPI)."""
        if tf.get_static_value(num_steps) == 1:
            # The token is an argument, not a constant in the graph (see _overlapped_update).
            return self._one_step(iterator, tf.constant(0.0))
        return self._loop(iterator, num_steps)

    def _train_loop_one_step(self, iterator, token):
        loss, norm = self.backend.run(self._replica_step, args=(next(iterator), token))
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
            # `norm` (iteration i-1's) orders this iteration's first collective.
            loss, norm = self.backend.run(self._replica_step, args=(batch, norm))
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
