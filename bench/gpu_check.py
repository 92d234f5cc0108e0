"""The GPU check's driver (bench/gpu_check.sh runs it): each case in its own process.

    python bench/gpu_check.py probe                    # the GPU TensorFlow sees; exit 0 if one
    python bench/gpu_check.py run [--device=gpu|cpu] [--dry] [--cases=default,mirrored,...] \
        [--workdir=runs/gpu_check-...] [--set=train.global_batch_size=512 ...] \
        [--steps=100] [--loss_rtol=1e-5] [--timeout=180] [--budget=300]

`run` trains with `python -m focal_dist.train` (through bench/gpu_case.py, which splits
the GPU into logical GPUs where asked and reads the peak device memory at the end):

    default          the default config on one device
    mirrored         the same on MirroredStrategy, 2 replicas (the GPU split into 2 logical
                     GPUs; --device=cpu: 2 logical CPUs); its per-step losses are compared
                     with default's, read from both runs' summary.json (N replicas must
                     train like one device), both with TF32 off
    mixed_precision  default with train.mixed_precision (mixed_float16, loss scaling)
    xla              default with train.jit_compile
    segmentation     --config=segmentation (U-Net, per-pixel focal loss), a short run
    fit              bench/train_throughput.py: our loop against `model.fit` at its best
                     (steps_per_execution=K + jit_compile), default strategy, same batches

and prints one table (result, seconds, peak GPU memory, what was measured), writes it
to <workdir>/report.md and exits 1 if any row failed. A case is stopped after --timeout
seconds; once --budget seconds have gone, the cases left are not run (both fail).
--dry: a few steps of small data, the same code paths (what the tests run on CPU).
--device=cpu hides every GPU from the cases (peak memory is then not measured).

`probe` exit status: 0 TensorFlow sees a GPU; 3 the installed TensorFlow is not a CUDA
build (tensorflow-cpu); 4 a CUDA build without the pip CUDA libraries (the `and-cuda`
extra); 5 a CUDA build with them that still sees no GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("default", "mirrored", "mixed_precision", "xla", "segmentation", "fit")

LOSS_ATOL = 1e-7  # as tests/training/equivalence_test.py


# --------------------------------------------------------------------------- probe


def nvidia_smi() -> dict | None:
    """The first GPU as nvidia-smi reports it (name, memory, driver, CUDA), or None."""
    if shutil.which("nvidia-smi") is None:
        return None
    query = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if query.returncode != 0 or not query.stdout.strip():
        return None
    name, memory, driver = (part.strip() for part in query.stdout.splitlines()[0].split(","))
    header = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False).stdout
    cuda = re.search(r"CUDA Version:\s*([0-9.]+)", header)
    return {
        "name": name,
        "memory_mb": int(float(memory)),
        "driver": driver,
        "cuda": cuda.group(1) if cuda else "?",
    }


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def probe() -> int:
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    distributions = [
        f"{name} {_installed(name)}"
        for name in ("tensorflow", "tensorflow-cpu")
        if _installed(name)
    ]
    print(f"TensorFlow {tf.__version__} ({', '.join(distributions) or 'distribution unknown'})")
    smi = nvidia_smi()
    if smi:
        print(
            f"nvidia-smi: {smi['name']}, {smi['memory_mb']} MiB, driver {smi['driver']}, "
            f"driver's CUDA {smi['cuda']}"
        )
    gpus = tf.config.list_physical_devices("GPU")
    if not build.get("is_cuda_build"):
        print("TensorFlow sees no GPU: this TensorFlow is not a CUDA build (tensorflow-cpu)")
        return 3
    print(
        f"TensorFlow built for CUDA {build.get('cuda_version')}, cuDNN {build.get('cudnn_version')}"
    )
    if not gpus:
        if not _installed("nvidia-cudnn-cu12"):
            print(
                "TensorFlow sees no GPU: the pip CUDA libraries (tensorflow[and-cuda]) are missing"
            )
            return 4
        print(
            "TensorFlow sees no GPU although it is a CUDA build with the pip CUDA libraries: "
            "its warnings above name the library or device that failed. The driver must "
            f"support CUDA {build.get('cuda_version')} (nvidia-smi: "
            f"{smi['cuda'] if smi else 'not found'}); "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}"
        )
        return 5
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        capability = ".".join(str(v) for v in details.get("compute_capability", ()))
        print(
            f"TensorFlow: {gpu.name}: {details.get('device_name')}, compute capability {capability}"
        )
    try:  # The memory TensorFlow's allocator may use (initialises the devices).
        from tensorflow.python.client import device_lib

        for device in device_lib.list_local_devices():
            if device.device_type == "GPU":
                print(
                    f"TensorFlow: {device.name}: {device.memory_limit / 2**20:,.0f} MiB for "
                    f"its allocator; {device.physical_device_desc}"
                )
    except Exception as error:  # A private module: its absence must not fail the probe.
        print(f"TensorFlow: device memory not read ({error})")
    return 0


# --------------------------------------------------------------------------- cases


@dataclasses.dataclass
class Case:
    name: str
    what: str
    target: list[str]  # after gpu_case.py's "--": ["-m", module, ...] or [script, ...]
    logical_gpus: int = 0
    no_tf32: bool = False
    workdir: Path | None = None  # trainer cases: where summary.json is
    replicas: int = 1
    steps: int = 0


@dataclasses.dataclass
class Row:
    """One line of the table; `ok` False makes the check fail."""

    name: str
    what: str
    ok: bool
    seconds: float | None = None
    peak: str = "-"
    note: str = ""


def small_data(dry: bool) -> dict:
    if not dry:
        return {}
    return {
        "train.steps_per_loop": 2,
        "data.synthetic.num_train": 2048,
        "data.synthetic.num_eval": 256,
        "data.synthetic.num_calibration": 512,
    }


def build_cases(names, *, workdir: Path, device: str, dry: bool, steps: int, overrides) -> list:
    trainer = ["-m", "focal_dist.train"]
    user = [f"--config.{item}" for item in overrides]
    steps = 4 if dry else steps
    common = {"train.steps": steps, **small_data(dry)}

    def train(name, config="default", extra=None, distribution="default"):
        flags_ = [f"--config={config}", f"--workdir={workdir / name}"]
        flags_ += [f"--config.{k}={v}" for k, v in {**common, **(extra or {})}.items()]
        flags_ += [f"--distribution={distribution}", *user]
        if distribution == "mirrored" and device == "cpu":
            flags_.append("--num_cpu_devices=2")
        return [*trainer, *flags_]

    segmentation = {}
    if dry:
        segmentation = {
            "data.synthetic.num_train": 64,
            "data.synthetic.num_eval": 16,
            "data.synthetic.num_calibration": 0,  # as configs/segmentation.py
            "train.global_batch_size": 8,
        }
    fit_flags = ["--strategies=default", "--inputs=same"]
    fit_flags += (
        ["--steps=20", "--k=10", "--repeats=1", "--num_train=2048"]
        if dry
        else ["--steps=500", "--k=50", "--repeats=3"]
    )
    every = {
        "default": Case(
            "default",
            "default config, one device, TF32 off",
            train("default"),
            no_tf32=True,
        ),
        "mirrored": Case(
            "mirrored",
            "default config, MirroredStrategy x2 "
            + ("(2 logical GPUs on one)" if device == "gpu" else "(2 logical CPUs)")
            + ", TF32 off",
            train("mirrored", distribution="mirrored"),
            logical_gpus=2 if device == "gpu" else 0,
            no_tf32=True,
            replicas=2,
        ),
        "mixed_precision": Case(
            "mixed_precision",
            "default config, train.mixed_precision",
            train("mixed_precision", extra={"train.mixed_precision": True}),
        ),
        "xla": Case(
            "xla",
            "default config, train.jit_compile",
            train("xla", extra={"train.jit_compile": True}),
        ),
        "segmentation": Case(
            "segmentation",
            "--config=segmentation (U-Net)",
            train("segmentation", config="segmentation", extra=segmentation),
        ),
        "fit": Case(
            "fit",
            "ours / model.fit, default strategy, same batches",
            [
                str(ROOT / "bench" / "train_throughput.py"),
                *fit_flags,
                f"--results={workdir / 'fit.results.json'}",
            ],
        ),
    }
    unknown = sorted(set(names) - set(every))
    if unknown:
        raise ValueError(f"--cases has {unknown}; expected some of {', '.join(CASES)}")
    cases = [every[name] for name in CASES if name in names]
    for case in cases:
        if case.name != "fit":
            case.workdir = workdir / case.name
            case.steps = steps
    return cases


def case_command(case: Case, report: Path, logical_gpu_memory_mb: int) -> list[str]:
    command = [sys.executable, str(ROOT / "bench" / "gpu_case.py"), f"--report={report}"]
    if case.logical_gpus:
        command += [
            f"--logical_gpus={case.logical_gpus}",
            f"--logical_gpu_memory_mb={logical_gpu_memory_mb}",
        ]
    if case.no_tf32:
        command.append("--no_tf32")
    return [*command, "--", *case.target]


def run_case(case: Case, *, workdir: Path, device: str, timeout: int, memory_mb: int) -> dict:
    """Runs `case` in its own process; returns gpu_case.py's report (or why there is none).

    Beside the cases' work dirs: <case>.log (its output) and <case>.peak.json (the report).
    """
    report = workdir / f"{case.name}.peak.json"
    log = workdir / f"{case.name}.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    command = case_command(case, report, memory_mb)
    print(f"--- {case.name}: {case.what}\n    {' '.join(command)}", flush=True)
    start = time.perf_counter()
    with open(log, "w") as output:
        try:
            status = subprocess.run(
                command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            status = None
    seconds = time.perf_counter() - start
    if status is None:
        result = {"error": f"stopped after {timeout} s (--timeout or --budget)"}
    elif not report.exists():
        result = {"error": f"exit {status}, no report"}
    else:
        result = json.loads(report.read_text())
        if status != 0:
            result["error"] = f"exit {status}"
    result.update(seconds=seconds, log=log)
    return result


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"({error})"


def format_peak(peak_bytes: dict) -> str:
    if not peak_bytes:
        return "-"
    return " + ".join(f"{value / 2**20:.1f}" for _, value in sorted(peak_bytes.items()))


def loss_difference(reference: list, other: list, *, rtol: float, atol: float = LOSS_ATOL) -> dict:
    """Per-step comparison of two runs' train_losses (np.allclose's rule, per step)."""
    if len(reference) != len(other) or not reference:
        return {
            "ok": False,
            "note": f"{len(reference)} and {len(other)} steps of losses: cannot compare",
        }
    differences = [abs(a - b) for a, b in zip(reference, other, strict=True)]
    relative = [
        d / abs(a) if a else (0.0 if d == 0 else math.inf)
        for d, a in zip(differences, reference, strict=True)
    ]
    worst = max(range(len(differences)), key=differences.__getitem__)
    within = all(d <= atol + rtol * abs(a) for d, a in zip(differences, reference, strict=True))
    return {
        "ok": within and all(math.isfinite(v) for v in [*reference, *other]),
        "max_abs": differences[worst],
        "max_rel": max(relative),
        "worst_step": worst + 1,
        "note": (
            f"max abs diff {differences[worst]:.2e} at step {worst + 1}, max rel "
            f"{max(relative):.2e} over {len(differences)} steps (rtol {rtol:g}, atol {atol:g})"
        ),
    }


def read_summary(case: Case) -> dict | None:
    try:
        return json.loads((case.workdir / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def check_trainer(case: Case, result: dict, device: str) -> Row:
    """The checks every trainer case passes: finished, its steps, finite losses, the
    replicas asked for, and on a GPU, memory used on every logical GPU."""
    row = Row(case.name, case.what, ok=False, seconds=result.get("seconds"))
    row.peak = format_peak(result.get("peak_bytes"))
    if "error" in result:
        row.note = f"{result['error']}; log {result['log']}"
        return row
    summary = read_summary(case)
    problems = []
    if summary is None:
        problems.append("no summary.json")
    else:
        losses = summary.get("train_losses") or []
        if not summary.get("complete") or summary.get("step") != case.steps:
            problems.append(f"ended at step {summary.get('step')}, not {case.steps}")
        if len(losses) != case.steps or not all(math.isfinite(v) for v in losses):
            problems.append(f"{len(losses)} losses, finite: {all(map(math.isfinite, losses))}")
        if summary.get("num_replicas") != case.replicas:
            problems.append(f"{summary.get('num_replicas')} replicas, not {case.replicas}")
    peaks = result.get("peak_bytes") or {}
    if device == "gpu":
        used = [name for name, value in peaks.items() if value > 0]
        if len(used) < max(1, case.logical_gpus):
            problems.append(f"GPU memory used on {used or 'no GPU'}: did it run on the GPU?")
    if problems:
        row.note = "; ".join(problems) + f"; log {result['log']}"
        return row
    row.ok = True
    headline = {
        k: v for k, v in (summary.get("eval") or {}).items() if k in ("pr_auc", "miou", "mean_dice")
    }
    row.note = f"loss {summary['train_loss']:.4g}" + "".join(
        f", {k} {v:.3f}" for k, v in headline.items() if isinstance(v, (int, float))
    )
    return row


def check_fit(case: Case, result: dict, workdir: Path) -> Row:
    row = Row(case.name, case.what, ok=False, seconds=result.get("seconds"))
    row.peak = format_peak(result.get("peak_bytes"))
    if "error" in result:
        row.note = f"{result['error']}; log {result['log']}"
        return row
    try:
        cells = json.loads((workdir / "fit.results.json").read_text())
        first = cells[0]
        ratios = [first["ours_1"] / first["fit_1"], first["ours_k"] / first["fit_k"]]
    except (OSError, ValueError, KeyError, IndexError, ZeroDivisionError) as error:
        row.note = f"no results ({error!r}); log {result['log']}"
        return row
    row.ok = all(math.isfinite(r) and r > 0 for r in ratios)
    k = first["k"]
    row.note = (
        f"1 step/call {ratios[0]:.2f}x ({first['ours_1']:,.0f} / {first['fit_1']:,.0f} ex/s); "
        f"fit at its best (spe={k}{' + jit' if first['fit_jit'] else ''}) {ratios[1]:.2f}x "
        f"({first['ours_k']:,.0f} / {first['fit_k']:,.0f} ex/s)"
    )
    return row


def compare_row(cases: dict, rtol: float) -> Row:
    """default against mirrored, per step, from their own summary.json."""
    what = "per-step train loss, mirrored vs default"
    summaries = [read_summary(cases[name]) for name in ("default", "mirrored")]
    if any(s is None for s in summaries):
        return Row("default = mirrored", what, ok=False, note="a run has no summary.json")
    compared = loss_difference(
        summaries[0]["train_losses"], summaries[1]["train_losses"], rtol=rtol
    )
    return Row("default = mirrored", what, ok=compared["ok"], note=compared["note"])


def loss_steps_table(reference: list, other: list) -> str:
    """The first steps, every tenth and the last, side by side."""
    shown = sorted(
        {i for i in range(len(reference)) if i < 3 or (i + 1) % 10 == 0 or i == len(reference) - 1}
    )
    lines = ["| step | default | mirrored | abs diff |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {i + 1} | {reference[i]:.9g} | {other[i]:.9g} | {abs(reference[i] - other[i]):.2e} |"
        for i in shown
        if i < len(other)
    ]
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    """The PASS/FAIL table; a case on 2 logical GPUs shows both peaks (a + b)."""
    lines = [
        "| case | what | result | seconds | peak GPU MiB | measured |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        seconds = "-" if row.seconds is None else f"{row.seconds:.1f}"
        result = "PASS" if row.ok else "FAIL"
        note = row.note.replace("|", "/")  # a cell of a markdown table
        lines.append(f"| {row.name} | {row.what} | {result} | {seconds} | {row.peak} | {note} |")
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("probe", help="Print the GPU TensorFlow sees; exit 0 if it sees one.")
    run = commands.add_parser("run", help="Run the cases and print the table.")
    run.add_argument("--device", choices=["gpu", "cpu"], default="gpu")
    run.add_argument("--dry", action="store_true", help="A few steps of small data per case.")
    run.add_argument(
        "--cases",
        type=lambda text: [name for name in text.split(",") if name],
        default=list(CASES),
        help=f"Comma-separated, of {','.join(CASES)} (default: all).",
    )
    run.add_argument("--workdir", help="Work dirs and logs; default runs/gpu_check-<time>.")
    run.add_argument("--steps", type=int, default=100, help="Steps per trainer case (--dry: 4).")
    run.add_argument(
        "--loss_rtol",
        type=float,
        default=1e-5,
        help="Per-step loss tolerance, mirrored against default (the equivalence test's).",
    )
    run.add_argument("--timeout", type=int, default=180, help="Seconds before a case fails.")
    run.add_argument(
        "--budget",
        type=int,
        default=300,
        help="Seconds for all cases: a case is stopped when they are spent, later ones not run.",
    )
    run.add_argument(
        "--logical_gpu_memory_mb",
        type=int,
        default=0,
        help="Memory of each of the 2 logical GPUs; 0: a third of the GPU, at most 2048.",
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="A config override for every trainer case, e.g. train.global_batch_size=512.",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    options = parse(argv)
    if options.command == "probe":
        return probe()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = Path(options.workdir or ROOT / "runs" / f"gpu_check-{stamp}").resolve()
    if workdir.exists() and any(workdir.iterdir()):
        print(f"gpu_check: --workdir={workdir} is not empty: the runs would resume from it")
        return 1
    memory_mb = options.logical_gpu_memory_mb
    if not memory_mb and options.device == "gpu":
        smi = nvidia_smi()
        memory_mb = min(2048, smi["memory_mb"] // 3) if smi else 2048
    try:
        cases = build_cases(
            options.cases,
            workdir=workdir,
            device=options.device,
            dry=options.dry,
            steps=options.steps,
            overrides=options.set,
        )
    except ValueError as error:
        print(f"gpu_check: {error}")
        return 1
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"gpu_check: {len(cases)} cases on {options.device}, work dirs and logs in {workdir}")
    start = time.perf_counter()
    rows = []
    by_name = {case.name: case for case in cases}
    for case in cases:
        # The GPU is lent for minutes: a case gets what is left of the budget at most.
        left = options.budget - (time.perf_counter() - start)
        if left < 1:
            rows.append(
                Row(
                    case.name,
                    case.what,
                    ok=False,
                    note=f"not run: --budget={options.budget} s spent",
                )
            )
            print(f"--- {case.name}: not run, the {options.budget} s budget is spent")
            continue
        result = run_case(
            case,
            workdir=workdir,
            device=options.device,
            timeout=min(options.timeout, int(left)),
            memory_mb=memory_mb,
        )
        if case.name == "fit":
            rows.append(check_fit(case, result, workdir))
        else:
            rows.append(check_trainer(case, result, options.device))
        print(
            f"    {'PASS' if rows[-1].ok else 'FAIL'} in {result['seconds']:.1f} s: {rows[-1].note}"
        )
        if not rows[-1].ok:
            print(f"    the end of {result['log']}:\n{log_tail(result['log'])}", flush=True)
    report = []
    if "default" in by_name and "mirrored" in by_name:
        rows.insert(
            [r.name for r in rows].index("mirrored") + 1, compare_row(by_name, options.loss_rtol)
        )
        summaries = [read_summary(by_name[n]) for n in ("default", "mirrored")]
        if all(summaries):
            losses = [s["train_losses"] for s in summaries]
            report += [
                "Per-step train loss, one device and 2 replicas:",
                "",
                loss_steps_table(*losses),
                "",
            ]
    failed = [row.name for row in rows if not row.ok]
    report += [
        table(rows),
        "",
        f"gpu_check: {len(rows) - len(failed)} PASS, {len(failed)} FAIL"
        + (f" ({', '.join(failed)})" if failed else "")
        + f"; {time.perf_counter() - start:.0f} s",
    ]
    text = "\n".join(report)
    print("\n" + text)
    (workdir / "report.md").write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
