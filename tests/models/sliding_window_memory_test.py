"""A 4096x4096 image is inferred by sliding windows without a whole-image activation."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("sliding_window_memory_worker.py")
SIDE = 4096
WHOLE_IMAGE_ACTIVATION_MIB = SIDE * SIDE * 64 * 4 / 2**20  # the 64-channel layer: 4 GiB


@pytest.mark.slow
def test_4096_square_image_peak_memory_stays_far_below_one_whole_image_activation():
    """Peak RSS growth during inference (ru_maxrss in a fresh process) is bounded by the
    result ([4096, 4096, 2] float32: 128 MiB, a few copies) and one window batch, not
    by the 4 GiB a whole-image pass would hold in its first layer alone."""
    result = subprocess.run(
        [sys.executable, str(WORKER), str(SIDE), "256", "0", "4"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [SIDE, SIDE, 2]
    assert report["max_error"] < 1e-5
    growth = report["after_mib"] - report["before_mib"]
    assert growth < WHOLE_IMAGE_ACTIVATION_MIB / 4, report
