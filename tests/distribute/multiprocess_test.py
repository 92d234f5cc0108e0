"""The histogram and the global loss with real processes on 127.0.0.1.

multiworker (two TF_CONFIG workers via launch/multiworker.py), `horovodrun -np 2` with
Gloo, and `horovodrun --mpi -np 2`: every worker must report NumPy's counts for the
10,007 known labels, exact int64 sums past 2^31, and the single-device sum(w*l)/N.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.distribute import fixtures
from tests.training import runs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKER = Path(__file__).with_name("histogram_worker.py")


@pytest.fixture(scope="module")
def data_paths(tmp_path_factory):
    return fixtures.write_files(tmp_path_factory.mktemp("histogram_data"))


def _env():
    return dict(
        os.environ,
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        TF_CPP_MIN_LOG_LEVEL="2",
    )


def _run(command, timeout=300):
    result = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def _horovod_has_mpi() -> bool:
    out = subprocess.run(
        [str(BIN / "horovodrun"), "--check-build"], capture_output=True, text=True, env=_env()
    ).stdout
    return "[X] MPI" in out


LAUNCHERS = ["multiworker", "horovod_gloo", "horovod_mpi"]


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_two_workers_count_every_example_once_and_share_one_global_mean(
    launcher, data_paths, tmp_path
):
    if launcher == "horovod_mpi" and not _horovod_has_mpi():
        # Only without OpenMPI (set-up without root), which `make setup` reports.
        pytest.skip("Horovod was built without MPI (no OpenMPI at set-up)")
    out = tmp_path / "out"
    worker = [str(WORKER), f"--paths={json.dumps(data_paths)}", f"--out={out}"]
    _run(runs.distributed_command(launcher, worker))
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    single_device_loss = (
        sum(
            float((loss.astype(np.float64) * w).sum())
            for loss, w in zip(fixtures.LOCAL_LOSSES, fixtures.LOCAL_WEIGHTS, strict=True)
        )
        / 10
    )
    for rank, report in enumerate(reports):
        assert report["rank"] == rank
        assert report["num_workers"] == 2
        for mode in ("binary", "multi_label", "sparse"):
            assert report[mode]["counts"] == fixtures.expected_counts(mode), (rank, mode)
            assert report[mode]["n"] == fixtures.NUM_EXAMPLES
        assert report["unsharded_dataset"]["counts"] == fixtures.expected_counts("sparse")
        assert report["unsharded_dataset"]["n"] == fixtures.NUM_EXAMPLES
        assert report["large_counts"] == [2 * c for c in fixtures.LARGE_COUNTS]
        np.testing.assert_allclose(report["global_loss"], single_device_loss, rtol=1e-6)
        assert report["chief_value"] == 1000.0  # rank 0's value, on both
        assert report["any_worker"] == [True, False]
        assert report["raised"] == ("rank 1's own" if rank == 1 else "elsewhere")


@pytest.mark.parametrize("launcher", ["default", "horovod_gloo", "multiworker"])
def test_histogram_cli_writes_counts_and_weights_json_from_the_chief(
    launcher, data_paths, tmp_path
):
    output = tmp_path / "weights.json"
    cli = [
        "-m",
        "focal_dist.histogram",
        f"--data={data_paths['sparse']}",
        f"--num_classes={fixtures.NUM_SPARSE}",
        "--label_mode=sparse",
        f"--output={output}",
        "--scheme=effective_number",
    ]
    command = runs.distributed_command(launcher, cli)
    result = _run(command)
    report = json.loads(output.read_text())
    counts = fixtures.expected_counts("sparse")
    assert report["counts"] == counts
    assert report["num_examples"] == fixtures.NUM_EXAMPLES
    n = np.array(counts, np.float64)
    balanced = n.sum() / (len(n) * n)
    np.testing.assert_allclose(report["class_weights"]["balanced"], balanced, rtol=1e-12)
    assert "weights: effective_number" in result.stdout
    assert result.stdout.count("weights: effective_number") == 1  # the chief prints alone


def test_histogram_cli_gives_each_label_of_multi_label_data_its_own_alpha(data_paths, tmp_path):
    output = tmp_path / "weights.json"
    labels = ",".join(f"y{c}" for c in range(fixtures.NUM_MULTI_LABEL))
    cli = [
        "-m",
        "focal_dist.histogram",
        f"--data={data_paths['multi_label']}",
        f"--num_classes={fixtures.NUM_MULTI_LABEL}",
        "--label_mode=multi_label",
        f"--label_column={labels}",
        f"--output={output}",
    ]
    result = _run(runs.distributed_command("default", cli))
    report = json.loads(output.read_text())
    positives = np.array(fixtures.expected_counts("multi_label"), np.float64)
    expected = 1 - positives / fixtures.NUM_EXAMPLES  # each label's negative share
    np.testing.assert_allclose(report["focal_alpha"], expected, rtol=1e-12)
    for c, alpha in enumerate(expected):
        row = next(line for line in result.stdout.splitlines() if line.split()[:1] == [str(c)])
        assert row.split()[-1] == f"{alpha:.4f}"
