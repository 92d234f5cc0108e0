"""Examples/s of focal_dist's loop under Horovod against Horovod's own TF2 example loop.

Run under Horovod (rank 0 prints):

    .venv/bin/horovodrun -np 2 -H localhost:2 --gloo .venv/bin/python bench/horovod_loop.py
    .venv/bin/horovodrun -np 2 -H localhost:2 --mpi .venv/bin/python bench/horovod_loop.py

Horovod's loop is the pattern of its TF2 examples: a `tf.function` step that records the
forward pass, wraps the tape in `hvd.DistributedGradientTape` (Horovod's default
op=Average on each rank's mean loss: equal local batches here) and applies the
gradients. Keras 3 variables are handed to Horovod as their tf.Variables (Horovod
0.28.1 needs `ref()`). Steps per call are matched: K steps of that step inside one
`tf.function` `tf.range` loop, as ours runs `steps_per_loop=K`. Same model (default
MLP), data (the same cached per-rank batches of the default synthetic set), global
batch 256 (128 per rank), loss (Keras's BinaryFocalCrossentropy, gamma 2, alpha 0.25)
and optimizer (Adam, constant learning rate). Chunks alternate theirs, ours.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import horovod
import horovod.tensorflow as hvd
import keras
import tensorflow as tf
import train_throughput as bench
from absl import app, flags

from focal_dist.distribute import get_backend
from focal_dist.distribute.horovod_tape import as_tf_variable
from focal_dist.tasks.classification import ClassificationTask
from focal_dist.training.trainer import Trainer

FLAGS = flags.FLAGS
flags.DEFINE_list("steps_per_call", ["1", "50"], "Steps per tf.function call, matched.")


def rank_examples(examples):
    """This rank's half of every global batch, as consecutive per-rank batches."""
    x, y = examples
    per_rank = FLAGS.global_batch_size // hvd.size()
    rows = slice(hvd.rank() * per_rank, (hvd.rank() + 1) * per_rank)

    def take(a):
        a = a.reshape(-1, FLAGS.global_batch_size, *a.shape[1:])[:, rows]
        return a.reshape(-1, *a.shape[2:])

    return take(x), take(y), per_rank


def horovod_example(k: int, examples):
    x, y, per_rank = rank_examples(examples)
    config = bench.config_for(1, False)
    model = ClassificationTask(config).build_model()
    optimizer = keras.optimizers.Adam(config.optimizer.learning_rate)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.BinaryFocalCrossentropy(gamma=2.0, alpha=0.25, from_logits=True)
    hvd.broadcast_variables([as_tf_variable(v) for v in model.variables], root_rank=0)
    variables = model.trainable_variables
    tf_variables = [as_tf_variable(v) for v in variables]

    def training_step(features, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(features, training=True))
        tape = hvd.DistributedGradientTape(tape)
        gradients = tape.gradient(loss, tf_variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return loss

    @tf.function
    def steps(iterator, num_steps):
        loss = tf.constant(0.0)
        for _ in tf.range(num_steps):
            loss = training_step(*next(iterator))
        return loss

    iterator = iter(bench.batches(x, y, per_rank))
    num_steps = tf.constant(k)

    def run(total: int) -> float:
        start = time.perf_counter()
        for _ in range(total // k):
            steps(iterator, num_steps).numpy()
        return total * FLAGS.global_batch_size / (time.perf_counter() - start)

    run(2 * k)
    return run


def ours(backend, k: int, jit: bool, examples):
    x, y, per_rank = rank_examples(examples)
    config = bench.config_for(k, jit)
    task = ClassificationTask(config)
    trainer = Trainer(config=config, task=task, backend=backend, workdir=tempfile.mkdtemp())
    backend.broadcast_variables(trainer.model.variables)
    iterator = iter(
        backend.distribute_dataset(
            lambda info: bench.batches(x, y, per_rank), config.train.global_batch_size
        )
    )
    num_steps = tf.constant(k)

    def run(total: int) -> float:
        start = time.perf_counter()
        for _ in range(total // k):
            trainer.step.train_loop(iterator, num_steps)[0].numpy()
        return total * FLAGS.global_batch_size / (time.perf_counter() - start)

    run(2 * k)
    return run


def main(argv):
    del argv
    backend = get_backend("horovod")
    examples = bench.in_memory_examples()
    chief = hvd.rank() == 0
    if chief:
        print(
            f"Horovod {horovod.__version__} ({'MPI' if hvd.mpi_enabled() else 'Gloo'}), "
            f"{hvd.size()} ranks; batch {FLAGS.global_batch_size}, {FLAGS.steps} steps x "
            f"{FLAGS.repeats} alternating chunks; load average {os.getloadavg()[0]:.1f}\n"
            "| steps per call | Horovod example loop | ours | ratio | ours + XLA | ratio |\n"
            "| --- | --- | --- | --- | --- | --- |",
            flush=True,
        )
    for k in (int(v) for v in FLAGS.steps_per_call):
        runs = [horovod_example(k, examples), ours(backend, k, False, examples)]
        runs.append(ours(backend, k, True, examples))
        results = [[] for _ in runs]
        for _ in range(FLAGS.repeats):
            for run, result in zip(runs, results, strict=True):
                result.append(run(FLAGS.steps))
        theirs, plain, fused = (statistics.median(r) for r in results)
        if chief:
            print(
                f"| {k} | {theirs:,.0f} | {plain:,.0f} | {plain / theirs:.2f}x | "
                f"{fused:,.0f} | {fused / theirs:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    app.run(main)
