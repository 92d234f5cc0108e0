"""bench/gpu_check.sh and its driver, as far as they run without a GPU.

The script's gate (no GPU: exit 2 at once), its handling of a venv whose TensorFlow
cannot see a GPU that nvidia-smi lists (a fake nvidia-smi, and a fake `pip` module that
records what the script asks of it, so that the venv is never changed), gpu_case.py's
report, the driver's loss comparison against numbers written here, and the driver's
cases on the CPU with --dry (the same code paths as on a GPU, a few steps each).
"""

import importlib.util
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.training.runs import ROOT, env

SCRIPT = ROOT / "bench" / "gpu_check.sh"
DRIVER = ROOT / "bench" / "gpu_check.py"
CASE = ROOT / "bench" / "gpu_case.py"


def _driver():
    """bench/gpu_check.py as a module (its dataclasses need it in sys.modules)."""
    name = "gpu_check_driver"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DRIVER)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def _pinned_tensorflow_cpu() -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith("tensorflow-cpu=="):
            return line.split("==")[1].strip()
    raise AssertionError("constraints.txt pins no tensorflow-cpu")


FAKE_NVIDIA_SMI = """#!/bin/sh
# Answers the three questions bench/gpu_check.* ask, as a one-GPU machine would.
case "$1" in
    -L) echo "GPU 0: NVIDIA Fake 16GB (UUID: GPU-00000000-1111-2222-3333-444444444444)" ;;
    --query-gpu=*) echo "NVIDIA Fake 16GB, 16384, 550.54.15" ;;
    *) echo "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4 |" ;;
esac
"""

BROKEN_NVIDIA_SMI = """#!/bin/sh
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
exit 9
"""

FAKE_PIP = """import json, os, sys
with open(os.environ["FAKE_PIP_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
installs_cuda = "install" in sys.argv and any("and-cuda" in a for a in sys.argv)
sys.exit(int(os.environ.get("FAKE_PIP_CUDA_STATUS", "0")) if installs_cuda else 0)
"""


def _bin_dir(tmp_path, nvidia_smi: str | None) -> Path:
    """A PATH directory with the tools the script needs, and nvidia-smi as given."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in ("bash", "dirname", "grep", "sed", "cat"):
        (directory / tool).symlink_to(shutil.which(tool))
    if nvidia_smi is not None:
        (directory / "nvidia-smi").write_text(nvidia_smi)
        (directory / "nvidia-smi").chmod(0o755)
    return directory


def _run_script(tmp_path, nvidia_smi, *args, timeout=120, **variables):
    """The script with PATH holding only _bin_dir and a fake `pip` module importable."""
    fake = tmp_path / "fake_modules" / "pip"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(FAKE_PIP)
    base = {k: v for k, v in env().items() if k != "CUDA_VISIBLE_DEVICES"}
    environment = dict(
        base,
        PATH=str(_bin_dir(tmp_path, nvidia_smi)),
        PYTHONPATH=str(tmp_path / "fake_modules"),
        FAKE_PIP_LOG=str(tmp_path / "pip.log"),
        **variables,
    )
    start = time.perf_counter()
    result = subprocess.run(
        [str(SCRIPT), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log = tmp_path / "pip.log"
    pip_calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, time.perf_counter() - start, pip_calls


@pytest.mark.parametrize(
    ("nvidia_smi", "variables", "reason"),
    [
        (FAKE_NVIDIA_SMI, {"CUDA_VISIBLE_DEVICES": ""}, "CUDA_VISIBLE_DEVICES='' hides every GPU"),
        (FAKE_NVIDIA_SMI, {"CUDA_VISIBLE_DEVICES": "-1"}, "CUDA_VISIBLE_DEVICES='-1' hides"),
        (None, {}, "nvidia-smi is not on PATH"),
        (BROKEN_NVIDIA_SMI, {}, "nvidia-smi -L failed"),
        ("#!/bin/sh\necho 'No devices found.'\n", {}, "nvidia-smi -L lists none"),
    ],
    ids=[
        "CUDA_VISIBLE_DEVICES empty",
        "CUDA_VISIBLE_DEVICES -1",
        "no nvidia-smi",
        "no driver",
        "none",
    ],
)
def test_without_a_gpu_the_script_says_so_and_exits_2_before_importing_tensorflow(
    tmp_path, nvidia_smi, variables, reason
):
    result, seconds, pip_calls = _run_script(tmp_path, nvidia_smi, **variables)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "gpu_check: no GPU found: " in result.stdout
    assert reason in result.stdout
    # Nothing slow ran: importing TensorFlow alone takes seconds.
    assert seconds < 3.0
    assert pip_calls == []
    assert "TensorFlow" not in result.stdout


def test_an_unknown_argument_is_refused_before_anything_runs(tmp_path):
    result, _, pip_calls = _run_script(tmp_path, FAKE_NVIDIA_SMI, "--no-instal")
    assert result.returncode == 64
    assert "unknown argument '--no-instal'" in result.stderr
    assert pip_calls == []


def test_with_no_install_a_cpu_tensorflow_is_reported_with_the_commands_and_left_alone(tmp_path):
    release = _pinned_tensorflow_cpu()
    result, _, pip_calls = _run_script(tmp_path, FAKE_NVIDIA_SMI, "--no-install")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "GPU 0: NVIDIA Fake 16GB" in result.stdout  # nvidia-smi's list, printed
    # The probe read nvidia-smi's answers and TensorFlow's build.
    assert "nvidia-smi: NVIDIA Fake 16GB, 16384 MiB, driver 550.54.15, driver's CUDA 12.4" in (
        result.stdout
    )
    assert "not a CUDA build (tensorflow-cpu)" in result.stdout
    assert "-m pip --disable-pip-version-check uninstall -y tensorflow-cpu" in result.stdout
    assert f"install -c constraints.txt tensorflow[and-cuda]=={release}" in result.stdout
    assert pip_calls == []


def test_a_cpu_tensorflow_is_removed_before_the_cuda_build_is_installed(tmp_path):
    # The fake pip "installs" nothing, so the probe still sees tensorflow-cpu afterwards.
    release = _pinned_tensorflow_cpu()
    result, _, pip_calls = _run_script(tmp_path, FAKE_NVIDIA_SMI)
    assert pip_calls == [
        ["--disable-pip-version-check", "uninstall", "-y", "tensorflow-cpu"],
        [
            "--disable-pip-version-check",
            "install",
            "-c",
            "constraints.txt",
            f"tensorflow[and-cuda]=={release}",
        ],
    ]
    assert result.returncode == 1
    assert "does not see the GPU that nvidia-smi lists" in result.stderr
    assert result.stdout.count("not a CUDA build") == 2  # probed again after the install


def test_a_failed_install_puts_tensorflow_cpu_back(tmp_path):
    release = _pinned_tensorflow_cpu()
    result, _, pip_calls = _run_script(tmp_path, FAKE_NVIDIA_SMI, FAKE_PIP_CUDA_STATUS="1")
    assert result.returncode == 1
    assert [call[1] for call in pip_calls] == ["uninstall", "install", "install"]
    assert pip_calls[2][-1] == f"tensorflow-cpu=={release}"
    assert "installing tensorflow[and-cuda]" in result.stderr
    assert "putting tensorflow-cpu" in result.stderr


def _case(tmp_path, *options_and_target, **variables):
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, str(CASE), f"--report={report}", *options_and_target],
        cwd=ROOT,
        env=env(CUDA_VISIBLE_DEVICES="", **variables),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, json.loads(report.read_text()) if report.exists() else None


def test_gpu_case_runs_a_script_as_main_and_reports_its_exit_status(tmp_path):
    target = tmp_path / "target.py"
    target.write_text(
        "import sys\nimport tensorflow as tf\n"
        "if __name__ == '__main__':\n"
        "    print('args', sys.argv[1:], float(tf.reduce_sum(tf.ones(3))))\n"
        "    sys.exit(7)\n"
    )
    result, report = _case(tmp_path, "--", str(target), "--a=1", "b")
    assert result.returncode == 7
    assert "args ['--a=1', 'b'] 3.0" in result.stdout
    assert report["exit_status"] == 7
    assert report["peak_bytes"] == {}  # no GPU: nothing to read
    assert report["tf32"] is True
    assert report["seconds"] > 0


def test_gpu_case_refuses_to_split_a_gpu_it_does_not_have(tmp_path):
    result, report = _case(tmp_path, "--logical_gpus=2", "--", "-m", "json.tool", "--help")
    assert result.returncode != 0
    assert "--logical_gpus=2 but TensorFlow sees no GPU" in result.stderr
    assert report is None


def test_loss_difference_is_the_largest_per_step_gap_against_the_tolerance():
    driver = _driver()
    reference = [0.5, 0.25, 0.125, 0.0625]
    same = driver.loss_difference(reference, list(reference), rtol=1e-5)
    assert same["ok"]
    assert same["max_abs"] == 0.0
    # Step 3 off by 4e-6 relative (5e-7, within 1e-5), step 2 by 1e-6 (2.5e-7).
    close = [0.5, 0.25 * (1 + 1e-6), 0.125 * (1 + 4e-6), 0.0625]
    result = driver.loss_difference(reference, close, rtol=1e-5)
    assert result["ok"]
    assert result["worst_step"] == 3
    assert result["max_abs"] == pytest.approx(0.125 * 4e-6, rel=1e-6)
    assert result["max_rel"] == pytest.approx(4e-6, rel=1e-6)
    assert "at step 3" in result["note"]
    # Step 4 off by 3e-5 relative: beyond 1e-5 + atol 1e-7.
    far = [0.5, 0.25, 0.125, 0.0625 * (1 + 3e-5)]
    assert not driver.loss_difference(reference, far, rtol=1e-5)["ok"]
    assert driver.loss_difference(reference, far, rtol=1e-4)["ok"]


@pytest.mark.parametrize(
    "other",
    [[0.5, 0.25, 0.125], [0.5, 0.25, 0.125, math.nan], []],
    ids=["a step missing", "nan", "no losses"],
)
def test_loss_difference_fails_runs_that_cannot_agree(other):
    driver = _driver()
    reference = [0.5, 0.25, 0.125, 0.0625] if other else []
    assert not driver.loss_difference(reference, other, rtol=1.0)["ok"]


def test_on_a_gpu_the_mirrored_case_splits_the_gpu_and_on_a_cpu_the_cpu(tmp_path):
    driver = _driver()
    common = {"workdir": tmp_path, "dry": False, "steps": 100, "overrides": ["a.b=1"]}
    on_gpu = {c.name: c for c in driver.build_cases(driver.CASES, device="gpu", **common)}
    on_cpu = {c.name: c for c in driver.build_cases(driver.CASES, device="cpu", **common)}
    assert on_gpu["mirrored"].logical_gpus == 2
    assert "--num_cpu_devices=2" not in on_gpu["mirrored"].target
    assert on_cpu["mirrored"].logical_gpus == 0
    assert "--num_cpu_devices=2" in on_cpu["mirrored"].target
    # The compared pair differs only in the distribution (and its device split).
    strip = {"--distribution=default", "--distribution=mirrored", "--num_cpu_devices=2"}
    for cases in (on_gpu, on_cpu):
        pair = [
            [
                a.replace("/mirrored", "/X").replace("/default", "/X")
                for a in c.target
                if a not in strip
            ]
            for c in (cases["default"], cases["mirrored"])
        ]
        assert pair[0] == pair[1]
        assert cases["default"].no_tf32
        assert cases["mirrored"].no_tf32
        for name in ("default", "mirrored", "mixed_precision", "xla", "segmentation"):
            assert "--config.a.b=1" in cases[name].target
            assert "--config.train.steps=100" in cases[name].target
    assert "--config=segmentation" in on_gpu["segmentation"].target
    assert "--config.train.mixed_precision=True" in on_gpu["mixed_precision"].target
    assert "--config.train.jit_compile=True" in on_gpu["xla"].target
    with pytest.raises(ValueError, match="xla2"):
        driver.build_cases(["xla2"], device="gpu", **common)


def test_a_trainer_case_that_left_no_gpu_memory_behind_fails_on_a_gpu(tmp_path):
    driver = _driver()
    (case,) = driver.build_cases(
        ["default"], workdir=tmp_path, device="gpu", dry=True, steps=0, overrides=[]
    )
    case.workdir.mkdir(parents=True)
    summary = {
        "complete": True,
        "step": 4,
        "train_loss": 0.3,
        "train_losses": [0.6, 0.5, 0.4, 0.3],
        "num_replicas": 1,
        "eval": {"pr_auc": 0.5},
    }
    (case.workdir / "summary.json").write_text(json.dumps(summary))
    result = {"exit_status": 0, "seconds": 1.0, "log": "x.log", "peak_bytes": {"GPU:0": 0}}
    row = driver.check_trainer(case, result, "gpu")
    assert not row.ok
    assert "did it run on the GPU?" in row.note
    result["peak_bytes"] = {"GPU:0": 3 * 2**20}
    row = driver.check_trainer(case, result, "gpu")
    assert row.ok, row.note
    assert row.peak == "3.0"
    summary["num_replicas"] = 2
    (case.workdir / "summary.json").write_text(json.dumps(summary))
    assert "2 replicas, not 1" in driver.check_trainer(case, result, "gpu").note


def _dry_run(tmp_path, *flags):
    workdir = tmp_path / "check"
    result = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            "run",
            "--device=cpu",
            "--dry",
            f"--workdir={workdir}",
            *flags,
        ],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, workdir


def _table_rows(output: str) -> dict:
    """{case: (result, measured)} of the printed table."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[2] in ("PASS", "FAIL"):
            rows[cells[0]] = (cells[2], cells[5])
    return rows


@pytest.mark.slow
def test_dry_run_on_cpu_compares_mirrored_with_default_from_their_own_summaries(tmp_path):
    result, workdir = _dry_run(tmp_path, "--cases=default,mirrored")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _table_rows(result.stdout)
    assert {name: r[0] for name, r in rows.items()} == {
        "default": "PASS",
        "mirrored": "PASS",
        "default = mirrored": "PASS",
    }
    default, mirrored = (
        json.loads((workdir / name / "summary.json").read_text())
        for name in ("default", "mirrored")
    )
    assert (default["num_replicas"], mirrored["num_replicas"]) == (1, 2)
    assert len(default["train_losses"]) == len(mirrored["train_losses"]) == 4
    gaps = [
        abs(a - b) for a, b in zip(default["train_losses"], mirrored["train_losses"], strict=True)
    ]
    worst = max(range(4), key=gaps.__getitem__)
    assert f"max abs diff {gaps[worst]:.2e} at step {worst + 1}" in rows["default = mirrored"][1]
    assert f"| 1 | {default['train_losses'][0]:.9g} | {mirrored['train_losses'][0]:.9g} |" in (
        result.stdout
    )
    assert "gpu_check: 3 PASS, 0 FAIL" in result.stdout
    assert (workdir / "report.md").read_text().strip() in result.stdout


@pytest.mark.slow
def test_dry_run_fails_with_the_table_when_a_case_fails(tmp_path):
    # A global batch of 7 cannot be split over 2 replicas: the mirrored run refuses it.
    result, _ = _dry_run(tmp_path, "--cases=default,mirrored", "--set=train.global_batch_size=7")
    assert result.returncode == 1, result.stdout + result.stderr
    rows = _table_rows(result.stdout)
    assert rows["default"][0] == "PASS"
    assert rows["mirrored"][0] == "FAIL"
    assert "exit 1" in rows["mirrored"][1]
    assert rows["default = mirrored"][0] == "FAIL"
    assert "gpu_check: 1 PASS, 2 FAIL (mirrored, default = mirrored)" in result.stdout


@pytest.mark.slow
def test_dry_run_on_cpu_of_mixed_precision_and_xla(tmp_path):
    result, workdir = _dry_run(tmp_path, "--cases=mixed_precision,xla")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _table_rows(result.stdout)
    assert rows == {"mixed_precision": rows["mixed_precision"], "xla": rows["xla"]}
    assert rows["mixed_precision"][0] == rows["xla"][0] == "PASS"
    for name, field in (("mixed_precision", "mixed_precision"), ("xla", "jit_compile")):
        summary = json.loads((workdir / name / "summary.json").read_text())
        assert summary["config"]["train"][field] is True
        assert f"loss {summary['train_loss']:.4g}" in rows[name][1]


@pytest.mark.slow
def test_dry_run_on_cpu_of_segmentation_and_fit(tmp_path):
    result, workdir = _dry_run(tmp_path, "--cases=segmentation,fit")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _table_rows(result.stdout)
    assert {name: r[0] for name, r in rows.items()} == {"segmentation": "PASS", "fit": "PASS"}
    summary = json.loads((workdir / "segmentation" / "summary.json").read_text())
    assert summary["config"]["task"]["name"] == "segmentation"
    assert f"miou {summary['eval']['miou']:.3f}" in rows["segmentation"][1]
    cells = json.loads((workdir / "fit.results.json").read_text())
    ratio = cells[0]["ours_k"] / cells[0]["fit_k"]
    assert f"fit at its best (spe=10 + jit) {ratio:.2f}x" in rows["fit"][1]


def test_a_case_is_stopped_when_the_budget_is_spent_and_the_rest_are_not_run(tmp_path):
    start = time.perf_counter()
    result, _ = _dry_run(tmp_path, "--cases=default,mirrored", "--budget=3")
    assert time.perf_counter() - start < 60
    assert result.returncode == 1, result.stdout + result.stderr
    rows = _table_rows(result.stdout)
    assert rows["default"][0] == "FAIL"
    assert "stopped after 2 s" in rows["default"][1]
    assert rows["mirrored"] == ("FAIL", "not run: --budget=3 s spent")
