"""When did a run start to diverge? The rule that decides which checkpoints to distrust.

A run stops on a non-finite loss or weight; the checkpoints written shortly before may
already hold broken but finite weights (a learning rate of 1e30 makes them huge after
one update, and only the next loss overflows). Resuming from one of those would diverge
again whatever the new learning rate, so they are quarantined (`CheckpointStore`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics

import tensorflow as tf

# A checkpoint is suspect once the loss measured with its weights exceeds this many
# times the run's typical loss (see `diverged_checkpoints`). Large, because one batch of
# imbalanced data can cost 20 times the median; a divergence grows far beyond that.
DIVERGED_LOSS_FACTOR = 100.0


@dataclasses.dataclass(frozen=True)
class Record:
    """What the history says about checkpoint `step`.

    Attributes:
      step: the global step the checkpoint holds (its weights after `step` updates).
      losses: training losses of the steps after the previous checkpoint, up to `step`.
      eval: evaluation metrics computed at `step`, if any.
    """

    step: int
    losses: tuple[float, ...]
    eval: dict | None = None

    def to_json(self) -> str:
        return json.dumps({"step": self.step, "losses": list(self.losses), "eval": self.eval})


def _finite_mean(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.inf


def diverged_checkpoints(
    records: list[Record], losses_after_last: list[float], factor: float = DIVERGED_LOSS_FACTOR
) -> list[int]:
    """Steps of the checkpoints written after a divergence began, oldest first.

    Called when training stopped on a non-finite loss or weight. Checkpoint S holds the
    weights that produced the loss of step S + 1, the first loss measured with exactly
    them: the first loss of the next record, or of `losses_after_last` for the newest.
    S is healthy when that loss is finite and at most `factor` times the typical loss
    up to S (the median of the records' mean losses); the first unhealthy checkpoint
    and every later one are returned.
    """
    records = sorted(records, key=lambda r: r.step)
    means: list[float] = []
    for i, record in enumerate(records):
        mean = _finite_mean(record.losses)
        if math.isfinite(mean):
            means.append(mean)
        following = records[i + 1].losses if i + 1 < len(records) else losses_after_last
        if not following:
            continue  # No evidence yet (the run stopped right at this checkpoint).
        first = following[0]
        typical = statistics.median(means) if means else math.inf
        if not math.isfinite(first) or first > factor * typical:
            return [r.step for r in records[i:]]
    return []


def non_finite_counter(variables):
    """A `tf.function` returning how many values of the floating `variables` are NaN or
    inf: one reduction over all of them, run before each checkpoint and the export."""
    floating = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
    return tf.function(
        lambda: tf.add_n(
            [tf.reduce_sum(tf.cast(~tf.math.is_finite(v.value), tf.float32)) for v in floating]
        ),
        autograph=False,
    )
