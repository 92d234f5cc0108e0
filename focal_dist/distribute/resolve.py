"""Turns what a user has at hand into a `Backend`: None, a name, a Strategy, or a Backend.

    resolve_backend(None)           the tf.distribute strategy in scope (its replica context)
    resolve_backend("horovod")      this process's Horovod backend (built once)
    resolve_backend(strategy)       a user's own tf.distribute.Strategy
    resolve_backend(backend)        itself

Functions that take `backend=` (the global loss, the label histogram) call this, so that
they never look at which kind of backend they were given.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from focal_dist.distribute.base import Backend
from focal_dist.distribute.strategy_backend import (
    MultiWorkerBackend,
    StrategyBackend,
    worker_topology,
)

# Names that denote one backend per process; "mirrored" and "multiworker" would build a
# second strategy beside the user's, so they must be passed as objects.
_PROCESS_BACKENDS = ("horovod",)


class UserStrategyBackend(StrategyBackend):
    """A `tf.distribute.Strategy` the user built, or the one in scope (None).

    MultiWorkerBackend builds its own strategy from TF_CONFIG; this one reads the
    topology of the strategy it is given, so that counts are summed over its workers.
    """

    def __init__(self, strategy: tf.distribute.Strategy):
        super().__init__(strategy, type(strategy).__name__)
        resolver = getattr(strategy, "cluster_resolver", None)
        self._num_workers, self._worker_index = worker_topology(resolver)

    @property
    def worker_index(self) -> int:
        return self._worker_index

    @property
    def num_workers(self) -> int:
        return self._num_workers

    def all_reduce_sum(self, value):
        if tf.distribute.in_cross_replica_context():
            if self.strategy.num_replicas_in_sync > 1:
                raise ValueError(
                    "a SUM over replicas needs a replica context: call it inside "
                    f"strategy.run, not in the cross-replica context of "
                    f"{type(self.strategy).__name__}"
                )
            return value
        return super().all_reduce_sum(value)

    def sum_across_workers(self, value):
        if self._num_workers == 1:
            return value
        # The multi-worker reduction reads nothing but `self.strategy`.
        return MultiWorkerBackend.sum_across_workers(self, value)


class WholeBatchBackend(Backend):
    """One replica that holds the whole global step: every SUM is the value itself.

    For a loss called outside any replica step (Keras's symbolic build of `fit`, or a
    call on the whole batch in a cross-replica context), where the data at hand is all
    of it.
    """

    name = "whole_batch"
    num_replicas_in_sync = 1

    def distribute_dataset(self, dataset_fn, global_batch_size: int):
        return dataset_fn(self.input_info(global_batch_size))

    def run(self, fn, args=()):
        return fn(*args)

    def all_reduce_sum(self, value):
        return value

    def reduce_sum(self, per_replica_value):
        return per_replica_value

    def sum_across_workers(self, value):
        return value


@functools.cache
def _process_backend(name: str) -> Backend:
    from focal_dist.distribute import get_backend

    return get_backend(name)


def resolve_backend(backend, *, argument: str = "backend") -> Backend:
    """The Backend meant by `backend`: None, "horovod", a Strategy or a Backend."""
    if backend is None:
        return UserStrategyBackend(tf.distribute.get_strategy())
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, tf.distribute.Strategy):
        return UserStrategyBackend(backend)
    if isinstance(backend, str) and backend in _PROCESS_BACKENDS:
        return _process_backend(backend)
    raise ValueError(
        f"{argument} must be None (the tf.distribute strategy in scope), "
        f"{', '.join(repr(n) for n in _PROCESS_BACKENDS)}, a tf.distribute.Strategy or a "
        f"focal_dist.distribute.Backend; got {backend!r}"
    )
