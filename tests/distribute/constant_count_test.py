"""A count that is a constant on one rank and not on another still meets its collective.

Horovod's ops are stateless, so Grappler folds an all-reduce of constants at
optimisation time (horovod/horovod#3229): the rank where the count is a constant stops
issuing it and the job hangs. The Horovod backend keeps every in-graph all-reduce live.
"""

import json

import pytest

from tests.training import runs

pytestmark = pytest.mark.slow


def test_a_count_constant_on_one_rank_only_is_summed_every_call(tmp_path):
    out = tmp_path / "shares"
    command = runs.distributed_command(
        "horovod", [str(runs.ROOT / "tests" / "distribute" / "constant_count_worker.py"), str(out)]
    )
    runs.run(command[: command.index("--distribution=horovod")], timeout=180)
    shares = [json.loads((tmp_path / f"shares.{rank}").read_text()) for rank in (0, 1)]
    # 7 examples in all: rank 0 holds 1+2+3+4 = 10, rank 1 holds 1+2+3 = 6.
    assert shares[0] == pytest.approx([10 / 7] * 3)
    assert shares[1] == pytest.approx([6 / 7] * 3)
