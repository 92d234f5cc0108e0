"""How the cost of a step grows with the batch and the model width, ours against fit.

For each (global batch, MLP widths) cell, under the default strategy, both loops at
their best setting (fit: steps_per_execution=K, jit_compile=True; ours: steps_per_loop=K
with XLA) read the same cached batches (bench/train_throughput.py's "same" input), in
alternating chunks of about --examples examples, medians kept. Then, per width, a least
squares line  seconds per step = a + b * batch  over the batch sizes: `a` is the fixed
per-step overhead (µs) and b the cost per example; cost grows linearly with the work
when the line fits (its largest relative residual is printed).

    .venv/bin/python bench/cost_growth.py [--batches=64,256,1024,4096] \\
        [--widths=64x32,256x128,1024x512] [--k=50] [--examples=150000]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np
import train_throughput as tt
from absl import app, flags

from focal_dist.distribute import get_backend

FLAGS = flags.FLAGS
flags.DEFINE_list("batches", ["64", "256", "1024", "4096"], "Global batch sizes.")
flags.DEFINE_list("widths", ["64x32", "256x128", "1024x512"], "MLP hidden widths.")
flags.DEFINE_integer("examples", 150_000, "Examples per timed chunk (rounded to K steps).")


def measure(backend, batch: int, widths: list[str]) -> tuple[float, float]:
    """(fit, ours) examples/s for one cell."""
    FLAGS.global_batch_size = batch
    FLAGS.hidden_units = widths
    FLAGS.num_train = max(16384, 4 * batch)
    k = FLAGS.k
    FLAGS.steps = max(k, round(FLAGS.examples / batch / k) * k)
    examples = tt.in_memory_examples()
    return tt.alternate(
        tt.keras_fit(backend.strategy, k, True, examples), tt.ours(backend, k, True, examples)
    )


def main(argv):
    del argv
    backend = get_backend("default")
    batches = [int(b) for b in FLAGS.batches]
    print(
        f"default strategy, fit spe={FLAGS.k} + jit vs ours spl={FLAGS.k} + XLA, same cached "
        f"input; load average {os.getloadavg()[0]:.1f}\n"
        "| MLP widths | global batch | fit ex/s | ours ex/s | ours / fit | fit µs/step "
        "| ours µs/step |\n| --- | --- | --- | --- | --- | --- | --- |",
        flush=True,
    )
    fits = []
    for width in FLAGS.widths:
        units = width.split("x")
        seconds = {"fit": [], "ours": []}
        for batch in batches:
            fit, ours = measure(backend, batch, units)
            seconds["fit"].append(batch / fit)
            seconds["ours"].append(batch / ours)
            print(
                f"| {width} | {batch} | {fit:,.0f} | {ours:,.0f} | {ours / fit:.2f}x | "
                f"{batch / fit * 1e6:,.0f} | {batch / ours * 1e6:,.0f} |",
                flush=True,
            )
        for name, per_step in seconds.items():
            slope, intercept = np.polyfit(batches, per_step, 1)
            predicted = intercept + slope * np.asarray(batches)
            worst = np.max(np.abs(predicted - per_step) / per_step)
            fits.append((width, name, intercept * 1e6, slope * 1e9, worst))
    print(
        "\n| MLP widths | loop | fixed µs/step (a) | ns per example (b) | worst residual |\n"
        "| --- | --- | --- | --- | --- |"
    )
    for width, name, a, b, worst in fits:
        print(f"| {width} | {name} | {a:,.0f} | {b:,.1f} | {worst:.0%} |")
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    app.run(main)
