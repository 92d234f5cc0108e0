"""The progress line's ETA: the steps left at the speed of the calls after the first
(which traces and compiles), so a resumed run's first estimate is not its start-up's."""

import logging
import re
import types

from focal_dist.training.actions import Progress
from focal_dist.training.controller import CallResult


class _Summaries:
    def scalars(self, values, step, prefix=""):
        pass


def _progress(steps=1000):
    train = types.SimpleNamespace(steps=steps, global_batch_size=64, log_every=10)
    backend = types.SimpleNamespace(is_chief=True, num_replicas_in_sync=1)
    return Progress(summaries=_Summaries(), backend=backend, train=train, learning_rate=lambda: 0.1)


def _etas(caplog):
    return [float(m) for m in re.findall(r"ETA (\d+)s", caplog.text)]


def test_a_resumed_runs_eta_follows_the_calls_after_its_slow_first_one(caplog):
    caplog.set_level(logging.INFO, logger="absl")
    progress = _progress()
    # Resumed at step 500: the first call of 10 steps took 20 s (tracing), later ones 0.1 s.
    progress.after_call(CallResult(510, [0.5] * 10, seconds=20.0))
    progress.after_call(CallResult(520, [0.5] * 10, seconds=0.1))
    progress.after_call(CallResult(530, [0.5] * 10, seconds=0.1))
    lines = [line for line in caplog.text.splitlines() if "ETA" in line]
    assert "ETA -- (after the next call)" in lines[0]  # the first call's 2 s/step is start-up
    assert _etas(caplog) == [round(480 * 0.01), round(470 * 0.01)]
