"""One process of a bench/overlap.py run: builds the steps, times them in turns, reports.

Every process builds the same rows in the same order (their collectives must match);
rank 0 appends the table of each model to the results file the driver prints.
"""

from __future__ import annotations

import functools
import json
import os
import statistics

import numpy as np
import overlap_steps as steps
import tensorflow as tf

BUILD_ERRORS = (TypeError, ValueError)  # raised while tracing, alike on every process


def start_backend(flags_):
    """The run's backend; threads are set before TensorFlow starts (and MWMS needs to be
    built before any op runs)."""
    if flags_.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(flags_.intra_op_threads)
    from focal_dist.distribute import get_backend

    return get_backend(flags_.role)


def workload(flags_, model: str) -> steps.Workload:
    image = model != "mlp"
    return steps.Workload(
        model=model,
        batch_per_replica=flags_.image_batch_per_replica if image else flags_.batch_per_replica,
        num_features=flags_.num_features,
        hidden_units=tuple(int(u) for u in flags_.hidden_units),
        image_size=flags_.image_size,
        steps_per_call=flags_.steps_per_call,
        jit_compile=flags_.xla,
    )


def slowest(backend, seconds: float) -> float:
    """The largest of every process's `seconds` (one small collective: also a barrier)."""
    mine = np.zeros(backend.num_workers)
    mine[backend.worker_index] = seconds
    return float(np.max(backend.sum_across_workers(tf.constant(mine)).numpy()))


def rows_to_build(flags_, backend, work: steps.Workload, process: int):
    """[(step, bucket MB, wire, builder)] in the order every process builds them."""
    buckets = [float(b) for b in flags_.bucket_mb]
    wires = list(dict.fromkeys(["none", *flags_.compression]))
    ours = functools.partial(steps.ours, backend, work, process)
    rows = []
    for bucket in buckets:
        build = functools.partial(
            ours, allreduce_mode="overlap", bucket_mb=bucket, compression="none"
        )
        rows.append(("ours, overlap", bucket, "none", build))
    for wire in wires[1:]:
        build = functools.partial(
            ours, allreduce_mode="overlap", bucket_mb=buckets[0], compression=wire
        )
        rows.append(("ours, overlap", buckets[0], wire, build))
    build = functools.partial(ours, allreduce_mode="single", bucket_mb=0.0, compression="none")
    rows.append(("ours, single", "", "none", build))
    if flags_.role == "horovod":  # Horovod's Compression has fp16, no bfloat16
        for wire in [w for w in wires if w in ("none", "float16")]:
            build = functools.partial(steps.horovod_loop, work, process, compression=wire)
            rows.append(("Horovod loop", "", wire, build))
    shapes = work.build_model()
    for wire in wires:
        build = functools.partial(steps.allreduce_alone, backend, shapes, compression=wire)
        rows.append(("all-reduce alone", "", wire, build))
    rows.append(("compute only", "", "none", functools.partial(steps.compute_only, work, process)))
    return rows, steps.gradient_megabytes(shapes)


def run_role(flags_) -> None:
    backend = start_backend(flags_)
    process = backend.worker_index
    for model in flags_.models:
        work = workload(flags_, model)
        rows, megabytes = rows_to_build(flags_, backend, work, process)
        runs, errors = [], {}
        for index, (name, bucket, wire, build) in enumerate(rows):
            try:
                runs.append(build())
            except BUILD_ERRORS as error:  # e.g. a wire dtype a collective refuses
                # TensorFlow's message starts with "in user code:"; the cause is last.
                cause = [line.strip() for line in str(error).splitlines() if line.strip()]
                errors[index] = cause[-1][:160] if cause else type(error).__name__
                runs.append(None)
            if process == 0:
                print(f"built {name} {bucket} {wire}: {errors.get(index, 'ok')}", flush=True)
        per_step = [[] for _ in rows]
        slowest(backend, 0.0)
        for turn in range(flags_.repeats):
            for run, times in zip(runs, per_step, strict=True):
                if run is not None:
                    times.append(slowest(backend, run(flags_.steps)) / flags_.steps)
            if process == 0:
                print(f"turn {turn + 1}/{flags_.repeats} done", flush=True)
        medians = [statistics.median(t) if t else None for t in per_step]
        if process == 0:
            table = report(flags_, backend, work, megabytes, rows, medians, errors)
            with open(flags_.results, "a") as results:
                results.write(json.dumps(table) + "\n")


def report(flags_, backend, work, megabytes, rows, medians, errors) -> dict:
    """The table of one model: a row per step, with its ratios (see bench/overlap.py)."""
    by_key = {r[:3]: m for r, m in zip(rows, medians, strict=True) if m is not None}
    compute = by_key.get(("compute only", "", "none"))
    kind = "Horovod (Gloo) ranks" if flags_.role == "horovod" else "MultiWorkerMirrored workers"
    header = (
        f"### {flags_.link}: {backend.num_workers} {kind}, {work.describe()}, "
        f"{megabytes:.3g} MB of gradients, {work.batch_per_replica} examples per process; "
        f"{flags_.steps} steps x {flags_.repeats} alternating turns, {work.steps_per_call} "
        f"per call{', XLA' if work.jit_compile else ''}; load average {os.getloadavg()[0]:.1f}"
    )
    table_rows, notes = [], []
    for index, ((name, bucket, wire, _), seconds) in enumerate(zip(rows, medians, strict=True)):
        row = {"step": name, "bucket_mb": bucket, "wire": wire}
        if seconds is None:
            row["seconds"] = f"failed ({errors[index]})"
            table_rows.append(row)
            continue
        row["seconds"] = f"{seconds:.3f}"
        if name in ("ours, overlap", "ours, single", "Horovod loop"):
            horovod = by_key.get(("Horovod loop", "", wire))
            horovod = horovod or by_key.get(("Horovod loop", "", "none"))
            if horovod and name != "Horovod loop":
                row["vs_horovod"] = f"{horovod / seconds:.2f}x"
            communication = by_key.get(("all-reduce alone", "", wire))
            if compute and communication:
                row["vs_limit"] = f"{seconds / max(compute, communication):.2f}x"
        table_rows.append(row)
    first_bucket = float(flags_.bucket_mb[0])
    exact = by_key.get(("ours, overlap", first_bucket, "none"))
    for wire in flags_.compression:
        compressed = by_key.get(("ours, overlap", first_bucket, wire))
        if wire != "none" and exact and compressed:
            notes.append(f"{wire} on the wire: ours overlapped {exact / compressed:.2f}x as fast")
    return {"header": header, "rows": table_rows, "notes": notes}
