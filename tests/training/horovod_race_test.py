"""Horovod runs with several steps per call never die of the same-name collective race.

Before the step issued one collective per step, the loss all-reduce inside the
`tf.range` loop of a call could overlap the next iteration's, and Horovod aborted the
job ("a tensor with the same name as another tensor that is currently being processed")
in about 1 of 3 launches of this shape: a small fast model, 10 steps per call, some
thousand steps. The race is per call, so three launches of 4,000 steps (1,200 calls,
more than the ten launches of 1,000 steps this test first made) must all pass and
train; fewer launches save seven start-ups (about 85 s of the suite).

The overlapped step issues several collectives per step (the counts before the forward
pass, then one per gradient bucket): two more launches run it with one bucket per
variable and 20 steps per call, the shape most exposed to an unordered collective.
"""

import numpy as np
import pytest

from tests.training import runs

pytestmark = pytest.mark.slow

FAST_MANY_STEPS = {
    "train.steps": 4000,
    "train.global_batch_size": 64,
    "train.steps_per_loop": 10,
    "train.eval_every": 0,
    "train.checkpoint_every": 4000,
    "train.log_every": 2000,
    "data.num_features": 4,
    "data.synthetic.num_train": 2048,
    "data.synthetic.num_eval": 64,
    "data.synthetic.positive_rate": 0.1,
    "model.hidden_units": "(4,)",
    "loss.class_weights": "none",
}


OVERLAPPED = {
    **FAST_MANY_STEPS,
    "train.steps_per_loop": 20,
    "train.allreduce": "overlap",
    "train.allreduce_bucket_mb": 1e-6,
}


@pytest.mark.parametrize("launch", range(3))
def test_horovod_with_ten_steps_per_call_finishes_every_launch(launch, tmp_path):
    result = runs.run(runs.train_command("horovod", tmp_path, FAST_MANY_STEPS), check=False)
    _assert_finished(result, tmp_path)


@pytest.mark.parametrize("launch", range(2))
def test_horovod_overlapped_with_twenty_steps_per_call_finishes_every_launch(launch, tmp_path):
    result = runs.run(runs.train_command("horovod", tmp_path, OVERLAPPED), check=False)
    _assert_finished(result, tmp_path)


def _assert_finished(result, tmp_path):
    assert "same name as another tensor" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stderr[-3000:]
    summary = runs.summary(tmp_path)
    assert summary["step"] == 4000
    assert len(summary["train_losses"]) == 4000
    assert np.all(np.isfinite(summary["train_losses"]))
