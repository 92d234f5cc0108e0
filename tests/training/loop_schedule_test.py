"""Checkpoints and evaluations happen at the steps the config names, whatever
`steps_per_loop` is: a call of several steps ends on the next such step."""

import types

from focal_dist.training.actions import next_multiple
from focal_dist.training.controller import steps_in_next_call


def _schedule(**train):
    train = types.SimpleNamespace(**train)
    step, calls = 0, []
    while step < train.steps:
        boundaries = [*next_multiple(train.checkpoint_every, step)]
        boundaries += next_multiple(train.eval_every, step)
        step += steps_in_next_call(step, train.steps, train.steps_per_loop, boundaries)
        calls.append(step)
    return calls


def test_calls_end_on_every_checkpoint_and_eval_step_within_steps_per_loop():
    calls = _schedule(steps=130, steps_per_loop=50, checkpoint_every=30, eval_every=40)
    assert calls == [30, 40, 60, 80, 90, 120, 130]
    # An independent count: every multiple of 30 and 40 below 130, and the end.
    assert {s for s in range(1, 131) if s % 30 == 0 or s % 40 == 0} | {130} == set(calls)


def test_eval_every_zero_and_aligned_intervals_keep_full_calls():
    assert _schedule(steps=100, steps_per_loop=25, checkpoint_every=50, eval_every=0) == [
        25,
        50,
        75,
        100,
    ]
    assert _schedule(steps=7, steps_per_loop=1, checkpoint_every=5, eval_every=0) == list(
        range(1, 8)
    )
