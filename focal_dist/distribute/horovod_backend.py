"""Horovod (`horovod.tensorflow`, Gloo or MPI) as a focal_dist backend.

One process is one replica. `hvd.init()` runs when the backend is built, not on import,
so that importing focal_dist never starts Horovod.
"""

from __future__ import annotations

import tensorflow as tf

from focal_dist.distribute.base import Backend


class HorovodBackend(Backend):
    name = "horovod"

    def __init__(self):
        import horovod.tensorflow as hvd

        hvd.init()
        self._hvd = hvd

    @property
    def num_replicas_in_sync(self) -> int:
        return self._hvd.size()

    @property
    def rank(self) -> int:
        return self._hvd.rank()

    def all_reduce_sum(self, value: tf.Tensor) -> tf.Tensor:
        # op=Sum: Horovod's default Average is only right for equal local batches.
        return self._hvd.allreduce(value, op=self._hvd.Sum)
