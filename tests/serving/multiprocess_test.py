"""Calibration, thresholds and metrics with real processes on 127.0.0.1: two Horovod
ranks (Gloo) and two MultiWorkerMirroredStrategy workers, each holding an uneven shard
or none, must each get one process's result on the whole split."""

import json
from pathlib import Path

import numpy as np
import pytest

from focal_dist.distribute import get_backend
from tests.serving import serving_worker
from tests.training import runs

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("serving_worker.py")


@pytest.fixture(scope="module")
def single_process():
    """The reference: one process, the default backend, the whole of every split."""
    whole = serving_worker.run_all(get_backend("default"), lambda arrays: arrays)
    return json.loads(json.dumps(whole))


def _assert_close(got, expected, path=""):
    """Numbers to 1e-6 (relative or absolute), everything else equal, recursively."""
    if isinstance(expected, dict):
        assert set(got) == set(expected), path
        for key in expected:
            _assert_close(got[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), path
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _assert_close(g, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6, err_msg=path)
    else:
        assert got == expected, path


@pytest.mark.parametrize("launcher", ["horovod_gloo", "multiworker"])
def test_two_workers_with_uneven_or_empty_shards_get_the_single_process_result(
    launcher, single_process, tmp_path
):
    out = tmp_path / "out"
    runs.run(runs.distributed_command(launcher, [str(WORKER), f"--out={out}"]), timeout=600)
    for rank in range(2):
        report = json.loads((out / f"rank{rank}.json").read_text())
        assert (report["rank"], report["num_workers"]) == (rank, 2)
        for split in serving_worker.SPLITS:
            _assert_close(report[split], single_process, f"rank {rank} {split}")
        if rank == 1:
            assert "worker 1: logits must be finite; local row 5 is [nan]" in report["refused"]
        else:
            assert "1 other worker(s) passed invalid logits or labels" in report["refused"]


def test_the_reference_is_the_calibration_of_the_whole_split(single_process):
    # Guards the comparison above: the reference fits real, non-trivial parameters.
    binary = single_process["binary"]["calibration"]
    assert binary["method"] == "platt"
    assert 0.3 < binary["scale"][0] < 0.7
    assert (
        single_process["binary"]["metrics_after"]["ece"]
        < single_process["binary"]["metrics_before"]["ece"]
    )
