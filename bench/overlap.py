"""Step times on a shaped link: our overlapped step against Horovod's loop and the limit.

As root (the link is a network namespace of the script's own, bench/shaped_link.py):

    .venv/bin/python bench/overlap.py                            # 1gbit and 2500mbit
    .venv/bin/python bench/overlap.py --rates=1gbit --bucket_mb=1,4,16,64
    .venv/bin/python bench/overlap.py --models=mlp,resnet50 --backends=horovod
    .venv/bin/python bench/overlap.py --rates=unshaped           # plain loopback, any user

For every rate the script makes the namespace, shapes its `lo` with tbf, runs 2 Horovod
ranks (Gloo) and then 2 MultiWorkerMirrored workers inside it, and deletes it. Each run
times, per global step, on the same batches (--batch_per_replica examples per process):

    ours, overlap     TrainStep, train.allreduce=overlap, per --bucket_mb and --compression
    ours, single      TrainStep, train.allreduce=single (one collective after the backward)
    Horovod loop      hvd.DistributedGradientTape, Horovod's TF2 example (Horovod runs only)
    all-reduce alone  one SUM all-reduce of the gradients' shapes, per --compression
    compute only      TrainStep with no collective, every process at once: the limit

Turns alternate over all of them (--repeats turns of --steps steps); a turn's time is
its slowest process's, and each row keeps the median. Ratios: "Horovod / this" is the
speed against Horovod's loop (>= 1.0: at least as fast; compressed rows against
Horovod's Compression.fp16 where it exists), "this / limit" the time against
max(compute only, all-reduce alone) of the same wire dtype (1.0: fully overlapped).
Timings mean nothing on a loaded machine: the header prints the load average.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("rates", ["1gbit", "2500mbit"], "tc rates of the shaped lo; 'unshaped': none.")
flags.DEFINE_list("backends", ["horovod", "multiworker"], "horovod (Gloo) and/or multiworker.")
flags.DEFINE_list("models", ["mlp"], "mlp (--hidden_units), cnn, efficientnet_b0, resnet50.")
flags.DEFINE_list("bucket_mb", ["4"], "train.allreduce_bucket_mb values of the overlap rows.")
flags.DEFINE_list("compression", ["none", "float16"], "Wire dtypes (none, float16, bfloat16).")
flags.DEFINE_integer("num_processes", 2, "Horovod ranks / MultiWorkerMirrored workers.")
flags.DEFINE_integer("num_features", 1024, "mlp: input features.")
flags.DEFINE_list("hidden_units", ["2048", "2048", "2048"], "mlp: hidden widths (42 MB).")
flags.DEFINE_integer("batch_per_replica", 256, "mlp: examples per process and step.")
flags.DEFINE_integer("image_size", 64, "Image models: side of the random images.")
flags.DEFINE_integer("image_batch_per_replica", 32, "Image models: images per process.")
flags.DEFINE_integer("steps", 10, "Steps per timed turn (a multiple of --steps_per_call).")
flags.DEFINE_integer("repeats", 5, "Alternating turns; the median is kept.")
flags.DEFINE_integer("steps_per_call", 5, "Steps per tf.function call (ours and Horovod's).")
flags.DEFINE_bool("xla", False, "Compile our forward and backward pass with XLA.")
flags.DEFINE_integer("intra_op_threads", 0, "TensorFlow threads per process (0: TF default).")
flags.DEFINE_string("tbf_burst", "1mb", "tbf burst (must exceed lo's 64 KiB MTU).")
flags.DEFINE_string("tbf_latency", "200ms", "tbf latency (queue length).")
flags.DEFINE_integer("timeout", 7200, "Seconds before one run (one rate, one backend) is ended.")
flags.DEFINE_string("role", "", "Internal: horovod or multiworker (a process of one run).")
flags.DEFINE_string("link", "", "Internal: the rate this run's link is shaped to.")
flags.DEFINE_string("results", "", "Internal: rank 0 appends its rows here (JSON lines).")


# --- the driver: one namespace per rate, one run per backend ---------------------------
def run_command(backend: str, argv: list[str], link: str, results: str) -> list[str]:
    worker = [sys.executable, __file__, *argv, f"--role={backend}", f"--link={link}"]
    worker.append(f"--results={results}")
    n = FLAGS.num_processes
    if backend == "horovod":
        horovodrun = str(Path(sys.executable).parent / "horovodrun")
        return [horovodrun, "-np", str(n), "-H", f"localhost:{n}", "--gloo", *worker]
    launcher = [sys.executable, str(ROOT / "launch" / "multiworker.py"), f"--num_workers={n}"]
    return [*launcher, "--", *worker]


def drive(argv: list[str]) -> int:
    import shaped_link

    unknown = set(FLAGS.backends) - {"horovod", "multiworker"}
    if unknown or FLAGS.steps % FLAGS.steps_per_call:
        sys.exit(
            f"bench/overlap.py: --backends takes horovod, multiworker (got {FLAGS.backends}); "
            f"--steps={FLAGS.steps} must be a multiple of --steps_per_call={FLAGS.steps_per_call}"
        )
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    handle, results = tempfile.mkstemp(prefix="overlap_", suffix=".jsonl")
    os.close(handle)
    failed = []
    for rate in FLAGS.rates:
        try:
            with shaped_link.shaped_loopback(
                rate, burst=FLAGS.tbf_burst, latency=FLAGS.tbf_latency
            ) as prefix:
                for backend in FLAGS.backends:
                    print(f"== {rate}: {backend}, {FLAGS.num_processes} processes", flush=True)
                    command = prefix + run_command(backend, argv, rate, results)
                    code = subprocess.run(command, cwd=ROOT, env=env, timeout=FLAGS.timeout)
                    if code.returncode:
                        failed.append(f"{rate} {backend}: exit status {code.returncode}")
        except shaped_link.CannotShapeError as error:
            sys.exit(f"bench/overlap.py: {error}")
    with open(results) as lines:
        for line in lines:
            print_table(json.loads(line))
    for failure in failed:
        print(f"FAILED: {failure}")
    return 1 if failed else 0


def print_table(table: dict) -> None:
    print(f"\n{table['header']}\n")
    print("| step | bucket MB | wire | s/step | Horovod / this | this / limit |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in table["rows"]:
        cells = [row["step"], row["bucket_mb"], row["wire"], row["seconds"]]
        cells += [row.get("vs_horovod", ""), row.get("vs_limit", "")]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for line in table.get("notes", []):
        print(f"\n{line}")
    sys.stdout.flush()


def main(argv):
    if FLAGS.role:
        import overlap_run

        overlap_run.run_role(FLAGS)
        return 0
    del argv  # absl leaves only positional arguments; the runs get every flag given
    return drive(sys.argv[1:])


if __name__ == "__main__":
    app.run(main)
