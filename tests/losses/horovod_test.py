"""The losses in a Horovod user's own loop, with real `horovodrun -np 2 -H localhost:2`.

tests/losses/horovod_worker.py runs on each rank (uneven shards: 7 and 3 examples) and
compares with the single-process loss, gradient and Adam step on the whole batch, which
every rank computes itself.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.training import runs

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("horovod_worker.py")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("horovod_losses")
    runs.run(runs.distributed_command("horovod_gloo", [str(WORKER), str(out)]), timeout=300)
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


def test_two_ranks_run(reports):
    assert [r["rank"] for r in reports] == [0, 1]
    assert all(r["size"] == 2 for r in reports)


def test_broadcast_of_keras_3_variables_gives_every_rank_rank_0_weights(reports):
    assert reports[1]["before_broadcast_max_diff"] > 0.1  # rank 1 started elsewhere
    assert all(r["broadcast_max_diff"] == 0.0 for r in reports)


def test_summing_tape_with_uneven_shards_gives_the_single_process_gradient(reports):
    for report in reports:
        assert report["sum_max_rel_error"] < 1e-6
        np.testing.assert_allclose(report["step_loss"], report["full_loss"], rtol=1e-6)
        assert report["step_moved"] > 1e-2
        assert report["step_weights_max_diff"] < 1e-6


def test_horovods_default_average_gives_half_the_gradient_and_the_wrapper_refuses_it(reports):
    for report in reports:
        assert report["average_ratio"] == pytest.approx(0.5, rel=1e-6)
        assert "op=hvd.Average" in report["average_refused"]
        assert "op=hvd.Sum" in report["average_refused"]


def test_normalizer_is_summed_over_ranks(reports):
    # Rank 0: losses 0.5 + 2 + 1 with 1 positive; rank 1: 0.25 + 3 + 4 with 12.
    for report in reports:
        assert report["normalized_loss"] == pytest.approx((3.5 + 7.25) / 13, rel=1e-6)
