"""Thread pools follow the container's CPU limit (launch/cpu_limit.sh, the TFJob's env)."""

import os
import subprocess
import sys

import pytest

from tests.training.runs import ROOT, env

CPU_LIMIT = ROOT / "launch" / "cpu_limit.sh"
THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def _threads(cgroup_root, **preset) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    result = subprocess.run(
        [str(CPU_LIMIT), "env"],
        env=dict(base, FOCAL_DIST_CGROUP_ROOT=str(cgroup_root), **preset),
        capture_output=True,
        text=True,
        check=True,
    )
    pairs = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return {k: int(pairs[k]) for k in THREAD_VARS}


@pytest.mark.parametrize(
    ("cpu_max", "intra", "inter"),
    [("150000 100000", 2, 2), ("400000 100000", 4, 2), ("50000 100000", 1, 1)],
)
def test_cgroup_v2_quota_rounds_up_to_whole_threads(tmp_path, cpu_max, intra, inter):
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    assert _threads(tmp_path) == {
        "TF_NUM_INTRAOP_THREADS": intra,
        "TF_NUM_INTEROP_THREADS": inter,
        "OMP_NUM_THREADS": intra,
    }


def test_cgroup_v1_quota_and_no_limit(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _threads(tmp_path)["TF_NUM_INTRAOP_THREADS"] == 3
    unlimited = tmp_path / "unlimited"
    unlimited.mkdir()
    (unlimited / "cpu.max").write_text("max 100000\n")
    assert _threads(unlimited)["TF_NUM_INTRAOP_THREADS"] == os.cpu_count()


def test_values_already_set_by_the_pod_win(tmp_path):
    (tmp_path / "cpu.max").write_text("800000 100000\n")
    threads = _threads(tmp_path, TF_NUM_INTRAOP_THREADS="3")
    assert threads["TF_NUM_INTRAOP_THREADS"] == 3
    assert threads["OMP_NUM_THREADS"] == 3


def _tensorflow_threads(**variables) -> int:
    # A matmul makes TensorFlow start its intra-op pool; count the process's threads.
    script = (
        "import tensorflow as tf, os\n"
        "tf.linalg.matmul(tf.ones([256, 256]), tf.ones([256, 256])).numpy()\n"
        "print(len(os.listdir('/proc/self/task')))\n"
    )
    base = {k: v for k, v in env().items() if k not in THREAD_VARS}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=dict(base, **variables),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.split()[-1])


def test_tensorflow_honours_the_thread_variables_the_manifests_set():
    few = _tensorflow_threads(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    many = _tensorflow_threads(TF_NUM_INTRAOP_THREADS="9", TF_NUM_INTEROP_THREADS="1")
    # Eight more intra-op threads (TensorFlow may start a few others of its own).
    assert many - few >= 8, (few, many)
