"""The interface every distribution backend implements.

Only this package knows whether tf.distribute or Horovod is underneath; losses, the
label histogram and the training loop talk to a `Backend`.
"""

from __future__ import annotations

import abc

import tensorflow as tf


class Backend(abc.ABC):
    """What the rest of focal_dist needs from a distribution backend."""

    name: str = "abstract"

    @property
    @abc.abstractmethod
    def num_replicas_in_sync(self) -> int:
        """Replicas whose gradients are summed in one global step (all workers)."""

    @abc.abstractmethod
    def all_reduce_sum(self, value: tf.Tensor) -> tf.Tensor:
        """SUM of `value` over every replica; called inside a step (replica context)."""
