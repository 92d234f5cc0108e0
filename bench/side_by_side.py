"""Timing two ways of doing the same work in one process, taking turns, as ratios.

Used by the pipeline benchmarks (bench/image_pipeline.py, bench/parquet_pipeline.py):
"ours" against "plain", the best plain tf.data way of doing the same work.
"""

from __future__ import annotations

import statistics
import time


def rates(work: dict, per_pass: int, repeats: int) -> dict:
    """Per method: (median items/s, median CPU µs per item) over `repeats` passes.

    The methods take turns, starting with a different one each round, so drift in the
    machine's speed (other tenants, clocks) falls on all of them alike. CPU time of the
    whole process (tf.data's threads included) is the less noisy of the two figures.
    """
    names = list(work)
    wall, cpu = {n: [] for n in names}, {n: [] for n in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start, start_cpu = time.perf_counter(), time.process_time()
            work[name]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {
        n: (per_pass / statistics.median(wall[n]), 1e6 * statistics.median(cpu[n]) / per_pass)
        for n in names
    }


def report(label: str, unit: str, result: dict, goal: float) -> None:
    """One line: ours and plain in `unit`/s and CPU µs per item, and both ratios."""
    (ours, ours_cpu), (plain, plain_cpu) = result["ours"], result["plain"]
    print(
        f"{label} {unit}/s: ours {ours:,.0f}  plain {plain:,.0f}  ours/plain {ours / plain:.2f}x"
        f" | CPU µs per item: ours {ours_cpu:.1f}  plain {plain_cpu:.1f}  plain/ours "
        f"{plain_cpu / ours_cpu:.2f}x (goal >= {goal}x)",
        flush=True,
    )
