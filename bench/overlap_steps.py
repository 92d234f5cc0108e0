"""The steps that bench/overlap.py times, on every rank's share of the same batches.

Each builder returns `run(steps) -> seconds` for `steps` global steps, already traced
and warmed up. Every process of a run builds the same steps in the same order, so their
collectives match.

- `ours`: focal_dist's `TrainStep` (training/step.py) as the trainer builds it, under
  the backend of the run, "overlap" (one collective for the counts, then gradient
  buckets during the backward pass) or "single" (one collective after it).
- `compute_only`: the same `TrainStep` under the default strategy in every process at
  once: no collective, the same batch per process, the same CPU contention.
- `horovod_loop`: Horovod's TF2 example loop (`hvd.DistributedGradientTape` around the
  tape of each rank's mean loss, Horovod's default op=Average: equal batches here),
  Keras 3 variables handed over as their tf.Variables (horovod_tape.as_tf_variable).
- `allreduce_alone`: one SUM all-reduce of tensors shaped as the gradients, as the step
  issues it (training/allreduce.py, one bucket): the communication side of the limit.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from focal_dist import losses
from focal_dist.distribute import get_backend
from focal_dist.distribute.horovod_tape import as_tf_variable
from focal_dist.models import build_model
from focal_dist.tasks import LossTerm
from focal_dist.tasks.bucket_metrics import BucketEvaluation
from focal_dist.training import allreduce
from focal_dist.training.step import StepOptions, TrainStep

DISTINCT_BATCHES = 4  # per process, cached and repeated


@dataclasses.dataclass(frozen=True)
class Workload:
    """What one step trains: the model, and each replica's batch."""

    model: str
    batch_per_replica: int
    num_features: int = 1024
    hidden_units: tuple = (2048, 2048, 2048)
    image_size: int = 64
    steps_per_call: int = 5
    jit_compile: bool = False
    learning_rate: float = 1e-4

    @property
    def input_shape(self) -> tuple:
        if self.model == "mlp":
            return (self.num_features,)
        return (self.image_size, self.image_size, 3)

    def build_model(self) -> keras.Model:
        options = {"hidden_units": self.hidden_units} if self.model == "mlp" else {}
        return build_model(self.model, num_outputs=1, input_shape=self.input_shape, **options)

    def describe(self) -> str:
        if self.model == "mlp":
            shape = "x".join(str(u) for u in self.hidden_units)
            return f"MLP {shape} on {self.num_features} features"
        return f"{self.model} on {self.image_size}x{self.image_size}x3 images"

    def examples(self, process: int):
        """This process's (x, y): DISTINCT_BATCHES batches, positives at about 10%."""
        rng = np.random.default_rng(1000 + process)
        rows = DISTINCT_BATCHES * self.batch_per_replica
        x = rng.normal(size=(rows, *self.input_shape)).astype(np.float32)
        y = (rng.random((rows, 1)) < 0.1).astype(np.float32)
        return x, y


def gradient_megabytes(model: keras.Model) -> float:
    return sum(int(np.prod(v.shape)) * 4 for v in model.trainable_variables) / 1e6


def per_example_loss(labels, logits):
    return losses.binary_focal_crossentropy(labels, logits, gamma=2.0, from_logits=True)


def _batches(x, y, batch_size: int) -> tf.data.Dataset:
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size, drop_remainder=True)
    return dataset.cache().repeat().prefetch(tf.data.AUTOTUNE)


def _timed(call_once, steps_per_call: int):
    """`run(steps)`: seconds of steps / steps_per_call calls, after two warm-up calls."""

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps // steps_per_call):
            call_once()
        return time.perf_counter() - start

    run(2 * steps_per_call)  # trace, then one call on warm caches
    return run


def ours(backend, workload: Workload, process: int, *, allreduce_mode, bucket_mb, compression):
    """focal_dist's TrainStep under `backend` (see the module docstring)."""
    with backend.scope():
        model = workload.build_model()
        optimizer = keras.optimizers.Adam(workload.learning_rate)
        optimizer.build(model.trainable_variables)
    backend.prepare_optimizer(optimizer)
    backend.broadcast_variables(model.variables)
    step = TrainStep(
        model=model,
        optimizer=optimizer,
        backend=backend,
        loss_terms=(LossTerm("loss", per_example_loss),),
        evaluation=BucketEvaluation(1, lambda labels, logits: (tf.sigmoid(logits), labels)),
        options=StepOptions(
            per_replica_batch_size=workload.batch_per_replica,
            jit_compile=workload.jit_compile,
            allreduce=allreduce_mode,
            bucket_bytes=int(bucket_mb * 2**20),
            compression=compression,
        ),
    )
    x, y = workload.examples(process)
    global_batch = workload.batch_per_replica * backend.num_replicas_in_sync
    dataset = backend.distribute_dataset(
        lambda info: _batches(x, y, info.per_replica_batch_size), global_batch
    )
    iterator = iter(dataset)
    num_steps = tf.constant(workload.steps_per_call)
    # The per-step losses come back to the host once per call, as the controller reads them.
    return _timed(lambda: step.train_loop(iterator, num_steps)[0].numpy(), workload.steps_per_call)


def compute_only(workload: Workload, process: int):
    """Our step with no collective: the default strategy, one replica per process."""
    return ours(
        get_backend("default"),
        workload,
        process,
        allreduce_mode="single",
        bucket_mb=0.0,
        compression="none",
    )


def horovod_loop(workload: Workload, process: int, *, compression: str):
    """Horovod's TF2 example loop; `compression` "none" or "float16" (Compression.fp16)."""
    import horovod.tensorflow as hvd

    model = workload.build_model()
    optimizer = keras.optimizers.Adam(workload.learning_rate)
    optimizer.build(model.trainable_variables)
    hvd.broadcast_variables([as_tf_variable(v) for v in model.variables], root_rank=0)
    variables = model.trainable_variables
    tf_variables = [as_tf_variable(v) for v in variables]
    wire = {"none": hvd.Compression.none, "float16": hvd.Compression.fp16}[compression]

    def training_step(features, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(per_example_loss(labels, model(features, training=True)))
        tape = hvd.DistributedGradientTape(tape, compression=wire)
        gradients = tape.gradient(loss, tf_variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return loss

    @tf.function(jit_compile=False)
    def steps(iterator, num_steps):
        loss = tf.constant(0.0)
        for _ in tf.range(num_steps):
            loss = training_step(*next(iterator))
        return loss

    x, y = workload.examples(process)
    iterator = iter(_batches(x, y, workload.batch_per_replica))
    num_steps = tf.constant(workload.steps_per_call)
    return _timed(lambda: steps(iterator, num_steps).numpy(), workload.steps_per_call)


def allreduce_alone(backend, model: keras.Model, *, compression: str):
    """One SUM all-reduce per step of tensors shaped as `model`'s gradients."""
    rng = np.random.default_rng(7)
    tensors = [
        tf.constant(rng.normal(size=v.shape).astype(np.float32)) for v in model.trainable_variables
    ]

    def replica(tensors):
        # Copies made on the replica: MultiWorkerMirrored all-reduces nothing it was
        # handed from outside its replica function ("destinations can not be empty").
        tensors = [tf.identity(t) for t in tensors]
        summed, _ = allreduce.all_reduce_in_buckets(
            backend, tensors, bucket_bytes=0, compression=compression
        )
        return tf.add_n([tf.reshape(s, [-1])[0] for s in summed])

    # The tensors are arguments, not graph constants: Grappler could fold a collective of
    # a constant on one rank only (horovod#3229). One call per step: no loop, so no two
    # same-name collectives are ever in flight.
    @tf.function
    def once(tensors):
        return backend.local_results(backend.run(replica, (tensors,)))[0]

    return _timed(lambda: once(tensors).numpy(), 1)
