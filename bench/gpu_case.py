"""Runs one Python module or script as `python -m` / `python` would, in a process whose
devices are set up first, and writes the peak device memory it used (bench/gpu_check.py).

    python bench/gpu_case.py --report=peak.json [--logical_gpus=2] [--logical_gpu_memory_mb=2048] \
        [--no_tf32] -- -m focal_dist.train --config=default --workdir=runs/x ...
    python bench/gpu_case.py --report=peak.json -- bench/train_throughput.py --strategies=default

The peak is what TensorFlow's allocator held at most on each GPU
(`tf.config.experimental.get_memory_info(device)["peak"]`), read in the process itself
after the target returned; a process without a GPU reports none. The report (JSON) also
holds the target's exit status and its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(this wrapper's options, the target: ["-m", module, args...] or [script, args...])."""
    if "--" not in argv:
        raise SystemExit("usage: gpu_case.py [options] -- (-m MODULE | SCRIPT) [ARGS...]")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="gpu_case.py")
    parser.add_argument("--report", required=True, help="Where the JSON report is written.")
    parser.add_argument(
        "--logical_gpus",
        type=int,
        default=0,
        help="Split GPU 0 into this many logical GPUs (MirroredStrategy's replicas); 0: as is.",
    )
    parser.add_argument(
        "--logical_gpu_memory_mb",
        type=int,
        default=2048,
        help="Memory of each logical GPU (TensorFlow needs a limit to split a GPU).",
    )
    parser.add_argument(
        "--no_tf32",
        action="store_true",
        help="Full float32 matmuls and convolutions (TF32 rounds their inputs to 10 bits "
        "on Ampere and later, by default).",
    )
    options = parser.parse_args(argv[:split])
    target = argv[split + 1 :]
    if not target or (target[0] == "-m" and len(target) < 2):
        raise SystemExit("gpu_case.py: name a script, or -m and a module, after --")
    return options, target


def configure(options: argparse.Namespace) -> None:
    """Device settings that TensorFlow accepts only before it initialises its devices."""
    import tensorflow as tf

    if options.no_tf32:
        tf.config.experimental.enable_tensor_float_32_execution(False)
    if options.logical_gpus:
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            raise SystemExit(
                f"gpu_case.py: --logical_gpus={options.logical_gpus} but TensorFlow sees no GPU"
            )
        tf.config.set_logical_device_configuration(
            gpus[0],
            [tf.config.LogicalDeviceConfiguration(memory_limit=options.logical_gpu_memory_mb)]
            * options.logical_gpus,
        )


def peak_memory() -> dict:
    """{"GPU:0": bytes, ...} of every logical GPU this process initialised."""
    import tensorflow as tf

    peaks = {}
    for device in tf.config.list_logical_devices("GPU"):
        name = device.name.split("device:")[-1]  # "/device:GPU:0" -> "GPU:0"
        peaks[name] = int(tf.config.experimental.get_memory_info(name)["peak"])
    return peaks


def run_target(target: list[str]) -> int:
    """Runs the target as its own __main__; returns its exit status."""
    sys.argv = target[1:] if target[0] == "-m" else list(target)
    try:
        if target[0] == "-m":
            runpy.run_module(target[1], run_name="__main__", alter_sys=True)
        else:
            sys.path.insert(0, os.path.dirname(os.path.abspath(target[0])))
            runpy.run_path(target[0], run_name="__main__")
    except SystemExit as stop:
        if stop.code is None:
            return 0
        if isinstance(stop.code, int):
            return stop.code
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def main(argv: list[str]) -> int:
    options, target = parse(argv)
    configure(options)
    start = time.perf_counter()
    status = run_target(target)
    report = {
        "exit_status": status,
        "seconds": time.perf_counter() - start,
        "peak_bytes": peak_memory(),
        "logical_gpus": options.logical_gpus,
        "tf32": not options.no_tf32,
    }
    with open(options.report, "w") as handle:
        json.dump(report, handle, indent=1)
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
