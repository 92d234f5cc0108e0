"""Horovod runs with several steps per call never die of the same-name collective race.

Before the step issued one collective per step, the loss all-reduce inside the
`tf.range` loop of a call could overlap the next iteration's, and Horovod aborted the
job ("a tensor with the same name as another tensor that is currently being processed")
in about 1 of 3 launches of this shape: a small fast model, 10 steps per call, some
thousand steps. The race is per call, not per launch, so two launches of 6,000 steps
(1,200 calls, more than the ten launches of 1,000 steps this test first made) must both
pass and train; fewer launches save start-ups.

The overlapped step issues several collectives per step (the counts before the forward
pass, then one per gradient bucket): one more launch of 8,000 steps (400 calls of 20
steps, each of 5 collectives) runs it with one bucket per variable, the shape most
exposed to an unordered collective.
"""

import numpy as np
import pytest

from tests.training import runs

pytestmark = pytest.mark.slow

FAST_MANY_STEPS = {
    "train.steps": 6000,
    "train.global_batch_size": 64,
    "train.steps_per_loop": 10,
    "train.eval_every": 0,
    "train.checkpoint_every": 6000,
    "train.log_every": 2000,
    "data.num_features": 4,
    "data.synthetic.num_train": 2048,
    "data.synthetic.num_eval": 64,
    "data.synthetic.num_calibration": 256,
    "data.synthetic.positive_rate": 0.1,
    "model.hidden_units": "(4,)",
    "loss.class_weights": "none",
}


OVERLAPPED = {
    **FAST_MANY_STEPS,
    "train.steps": 8000,
    "train.checkpoint_every": 8000,
    "train.steps_per_loop": 20,
    "train.allreduce": "overlap",
    "train.allreduce_bucket_mb": 1e-6,
}


@pytest.mark.parametrize("launch", range(2))
def test_horovod_with_ten_steps_per_call_finishes_every_launch(launch, tmp_path):
    result = runs.run(runs.train_command("horovod", tmp_path, FAST_MANY_STEPS), check=False)
    _assert_finished(result, tmp_path)


def test_horovod_overlapped_with_twenty_steps_per_call_finishes(tmp_path):
    result = runs.run(runs.train_command("horovod", tmp_path, OVERLAPPED), check=False)
    _assert_finished(result, tmp_path, OVERLAPPED["train.steps"])


def _assert_finished(result, tmp_path, steps=FAST_MANY_STEPS["train.steps"]):
    assert "same name as another tensor" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stderr[-3000:]
    summary = runs.summary(tmp_path)
    assert summary["step"] == steps
    assert len(summary["train_losses"]) == steps
    assert np.all(np.isfinite(summary["train_losses"]))
