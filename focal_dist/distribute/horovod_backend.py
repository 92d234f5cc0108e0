"""Horovod (`horovod.tensorflow`, Gloo or MPI) as a backend: one process, one replica.

`hvd.init()` runs when the backend is built, not on import, so that importing
focal_dist never starts Horovod. With GPUs, each process is pinned to the GPU of its
local rank.
"""

from __future__ import annotations

import tensorflow as tf
from absl import logging

from focal_dist.distribute.base import Backend, InputInfo


class HorovodBackend(Backend):
    name = "horovod"

    def __init__(self):
        import horovod.tensorflow as hvd

        hvd.init()
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            try:
                tf.config.set_visible_devices(gpus[hvd.local_rank() % len(gpus)], "GPU")
            except RuntimeError:
                # TensorFlow already runs: the user's own loop (compute_global_loss(
                # backend="horovod")) has placed its devices itself.
                logging.info("horovod: devices already initialised; GPU pinning left as is")
        self._hvd = hvd
        # A runtime 0 (see all_reduce_sum), created here, outside any tf.function.
        self._runtime_zero = tf.Variable(0.0, trainable=False, name="horovod_runtime_zero")

    @property
    def num_replicas_in_sync(self) -> int:
        return self._hvd.size()

    @property
    def worker_index(self) -> int:
        return self._hvd.rank()

    @property
    def num_workers(self) -> int:
        return self._hvd.size()

    def distribute_dataset(self, dataset_fn, global_batch_size: int):
        return dataset_fn(self.input_info(global_batch_size))

    def run(self, fn, args=()):
        return fn(*args)

    def all_reduce_sum(self, value):
        # op=Sum: Horovod's default Average is only right for equal local batches.
        value = tf.convert_to_tensor(value)
        if not tf.executing_eagerly():
            # Horovod's ops are stateless: in a tf.function, Grappler folds an all-reduce
            # whose input is a constant (a count of a static-size batch) at optimisation
            # time, on the ranks where it is one; the ranks' collectives then stop matching
            # and the job hangs (horovod/horovod#3229). Adding a variable's 0 keeps it live.
            value = value + tf.cast(self._runtime_zero, value.dtype)
        return self._hvd.allreduce(value, op=self._hvd.Sum)

    def reduce_sum(self, per_replica_value):
        return tf.nest.map_structure(self.all_reduce_sum, per_replica_value)

    def local_results(self, per_replica_value):
        return (per_replica_value,)

    def sum_across_workers(self, value):
        # One process is one worker: the replica all-reduce counts each worker once.
        return self.all_reduce_sum(tf.convert_to_tensor(value))

    def broadcast_variables(self, variables) -> None:
        from focal_dist.distribute import horovod_tape

        horovod_tape.broadcast_variables(variables, root_rank=0)

    def aggregate_gradients(self, gradients):
        # One grouped all-reduce (SUM) for all gradients; IndexedSlices are densified.
        dense = [tf.convert_to_tensor(g) if g is not None else None for g in gradients]
        present = [g for g in dense if g is not None]
        reduced = iter(self._hvd.grouped_allreduce(present, op=self._hvd.Sum))
        return [next(reduced) if g is not None else None for g in dense]


__all__ = ["HorovodBackend", "InputInfo"]
