"""Gradient all-reduce bytes/s under Horovod: one grouped collective vs one per tensor.

    .venv/bin/horovodrun -np 2 -H localhost:2 --gloo .venv/bin/python bench/allreduce_bytes.py
    .venv/bin/horovodrun -np 2 -H localhost:2 --mpi .venv/bin/python bench/allreduce_bytes.py

For each built-in model the tensors are its trainable variables' shapes (float32), as
the step's gradients are. "grouped" is what the loop issues once per step
(`hvd.grouped_allreduce` of every gradient plus the count and the loss, op=Sum);
"per tensor" is one `hvd.allreduce` per gradient in the same `tf.function`, as
`hvd.DistributedGradientTape` issues them (Horovod's tensor fusion may still merge
them in its background thread). Bytes/s = gradient bytes / seconds per all-reduce of
the whole set (algorithm bandwidth, not the ring's bus bandwidth). Rank 0 prints a
Markdown table; chunks alternate grouped, per tensor.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import horovod
import horovod.tensorflow as hvd
import numpy as np
import tensorflow as tf
from absl import app, flags

from focal_dist.models import build_model

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["mlp", "cnn", "efficientnet_b0", "resnet50"], "Built-in models.")
flags.DEFINE_integer("repeats", 3, "Alternating chunks; the median is kept.")
flags.DEFINE_float("seconds", 1.0, "Rough length of one timed chunk.")

INPUTS = {"mlp": (32,), "cnn": (64, 64, 3), "efficientnet_b0": (64, 64, 3), "resnet50": (64, 64, 3)}


def gradient_like(name: str) -> list[tf.Tensor]:
    model = build_model(name, num_outputs=1, input_shape=INPUTS[name])
    return [tf.ones(v.shape, tf.float32) for v in model.trainable_variables]


def timer(fn, tensors):
    def run(calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn(tensors)[0].numpy()
        return (time.perf_counter() - start) / calls

    run(3)
    seconds = run(3)
    # Both ranks must make the same number of calls: rank 0's estimate decides.
    calls = int(hvd.broadcast(tf.constant(max(3, int(FLAGS.seconds / seconds))), 0).numpy())
    return lambda: run(calls)


def main(argv):
    del argv
    hvd.init()
    if hvd.rank() == 0:
        print(
            f"Horovod {horovod.__version__} ({'MPI' if hvd.mpi_enabled() else 'Gloo'}), "
            f"{hvd.size()} ranks on loopback; load average {os.getloadavg()[0]:.1f}\n"
            "| model | tensors | gradient MB | grouped ms | grouped MB/s | per tensor ms "
            "| per tensor MB/s | per tensor / grouped time |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            flush=True,
        )

    @tf.function
    def grouped(tensors):
        return hvd.grouped_allreduce(tensors, op=hvd.Sum)

    @tf.function
    def per_tensor(tensors):
        return [hvd.allreduce(t, op=hvd.Sum, name=f"g{i}") for i, t in enumerate(tensors)]

    for name in FLAGS.models:
        tensors = gradient_like(name)
        # The step's payload: the gradients, then the count and the loss sum.
        payload = [*tensors, tf.ones([]), tf.ones([])]
        megabytes = sum(int(np.prod(t.shape)) for t in tensors) * 4 / 1e6
        runs = [timer(grouped, payload), timer(per_tensor, tensors)]
        times = [[], []]
        for _ in range(FLAGS.repeats):
            for run, result in zip(runs, times, strict=True):
                result.append(run())
        g, p = (statistics.median(t) for t in times)
        if hvd.rank() == 0:
            print(
                f"| {name} | {len(tensors)} | {megabytes:.3f} | {g * 1e3:.3f} | "
                f"{megabytes / g:,.0f} | {p * 1e3:.3f} | {megabytes / p:,.0f} | {p / g:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    app.run(main)
