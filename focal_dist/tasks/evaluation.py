"""The Evaluation seam: how a task's eval batches become exact metrics over replicas."""

from __future__ import annotations

import abc

import numpy as np
import tensorflow as tf


class Evaluation(abc.ABC):
    """A task's eval metrics, exact over replicas: per-replica sums, summed, then metrics.

    `statistics` runs in every replica's eval step; the step sums its vectors over all
    replicas and batches (float64), so every example counts exactly once.
    """

    size: int  # length of the statistics vector

    @abc.abstractmethod
    def statistics(self, labels, logits, valid) -> tf.Tensor:
        """[size] sums over this replica's rows where `valid` ([B], 0/1) is 1."""

    @abc.abstractmethod
    def metrics(self, totals: np.ndarray) -> dict[str, float]:
        """The metrics of the whole eval set from the summed statistics."""

    def write(self, summaries, totals: np.ndarray, step: int) -> None:
        """TensorBoard views beyond the scalars (PR curves, images); default none."""

    def log_line(self, metrics: dict) -> str:
        """The metrics a progress log line shows."""
        return " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "/" not in k)
