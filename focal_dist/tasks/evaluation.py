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
    # Eval examples drawn each evaluation (`pictures`): the first `num_images` of the
    # eval set, run on the chief alone, outside the step. 0: none.
    num_images: int = 0

    @abc.abstractmethod
    def statistics(self, labels, logits, valid) -> tf.Tensor:
        """[size] sums over this replica's rows where `valid` ([B], 0/1) is 1."""

    @abc.abstractmethod
    def metrics(self, totals: np.ndarray) -> dict[str, float]:
        """The metrics of the whole eval set from the summed statistics."""

    def write(self, summaries, totals: np.ndarray, step: int) -> None:
        """TensorBoard views beyond the scalars (PR curves, images); default none."""

    def pictures(self, features, labels, logits) -> np.ndarray:
        """uint8 [N, H, W, 3] images of the first `num_images` eval examples (NumPy
        features, labels and float32 logits), for TensorBoard's image panel."""
        raise NotImplementedError(f"{type(self).__name__} sets num_images but draws no pictures")

    def log_line(self, metrics: dict) -> str:
        """The metrics a progress log line shows."""
        return " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "/" not in k)
