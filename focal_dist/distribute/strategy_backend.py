"""tf.distribute strategies (Default, Mirrored, MultiWorkerMirrored) as backends."""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf
from absl import logging

from focal_dist.distribute.base import Backend


class StrategyBackend(Backend):
    """A `tf.distribute.Strategy` behind the Backend interface.

    `aggregate_gradients` SUM-all-reduces in the replica context; Keras 3's TF optimizer
    would all-reduce again inside `apply_gradients`, which `prepare_optimizer` turns off.
    """

    def __init__(self, strategy: tf.distribute.Strategy, name: str):
        self.strategy = strategy
        self.name = name

    @property
    def num_replicas_in_sync(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def collectives_are_identity(self) -> bool:
        # all_reduce_sum and the strategy's own reduce return the value for one replica.
        return self.num_replicas_in_sync == 1

    def scope(self):
        return self.strategy.scope()

    def distribute_dataset(self, dataset_fn, global_batch_size: int):
        info = self.input_info(global_batch_size)

        def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return dataset_fn(
                dataclasses.replace(
                    info,
                    pipeline_id=context.input_pipeline_id,
                    num_pipelines=context.num_input_pipelines,
                )
            )

        return self.strategy.distribute_datasets_from_function(pipeline)

    def run(self, fn, args=()):
        return self.strategy.run(fn, args=tuple(args))

    def all_reduce_sum(self, value):
        context = tf.distribute.get_replica_context()
        if context is None:
            raise ValueError(f"all_reduce_sum needs a replica context ({self.name}.run)")
        if context.num_replicas_in_sync == 1:
            return value
        return context.all_reduce(tf.distribute.ReduceOp.SUM, value)

    def aggregate_gradients(self, gradients):
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return gradients
        present = [g for g in gradients if g is not None]
        reduced = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
        return [next(reduced) if g is not None else None for g in gradients]

    def reduce_sum(self, per_replica_value):
        # One reduce per tensor: MultiWorkerMirrored packs a nested structure into one
        # tensor and fails on members of different ranks.
        return tf.nest.map_structure(
            lambda value: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None),
            per_replica_value,
        )

    def local_results(self, per_replica_value):
        return self.strategy.experimental_local_results(per_replica_value)

    def sum_across_workers(self, value):
        return value

    def prepare_optimizer(self, optimizer) -> None:
        # Keras 3's TF optimizer SUM-all-reduces gradients again inside apply_gradients
        # in a replica context (`_all_reduce_sum_gradients`, a private hook); the step
        # has summed them already. If Keras renames the hook, gradients would silently
        # be summed twice: refuse to train instead.
        inner = getattr(optimizer, "inner_optimizer", None)
        for opt in (optimizer, inner):
            if opt is None:
                continue
            if not callable(getattr(opt, "_all_reduce_sum_gradients", None)):
                import keras

                raise RuntimeError(
                    f"{type(opt).__name__} of Keras {keras.__version__} has no "
                    "_all_reduce_sum_gradients hook (tested with Keras 3.15.1): this Keras "
                    "would sum gradients over replicas twice under tf.distribute"
                )
            opt._all_reduce_sum_gradients = _apply_as_given


def _apply_as_given(grads_and_vars):
    return list(grads_and_vars)


def worker_topology(cluster_resolver) -> tuple[int, int]:
    """(number of workers, this worker's index) of a cluster resolver (None: one worker).

    A "chief" task is worker 0; "worker" ids follow it when a chief exists.
    """
    if cluster_resolver is None:
        return 1, 0
    cluster = cluster_resolver.cluster_spec().as_dict()
    has_chief = bool(cluster.get("chief"))
    num_workers = max(1, len(cluster.get("worker", [])) + int(has_chief))
    task_id = cluster_resolver.task_id or 0
    index = 0 if cluster_resolver.task_type == "chief" else task_id + int(has_chief)
    return num_workers, index


def default_backend() -> StrategyBackend:
    return StrategyBackend(tf.distribute.get_strategy(), "default")


def mirrored_backend(num_cpu_devices: int | None = None) -> StrategyBackend:
    """MirroredStrategy over local GPUs, or over `num_cpu_devices` logical CPU devices.

    Splitting the CPU must happen before TensorFlow initialises its devices; when it
    already has the requested number of logical CPUs (a test session), they are reused.
    """
    if num_cpu_devices:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices
            )
        except RuntimeError:
            pass  # Already initialised; checked below.
        logical = tf.config.list_logical_devices("CPU")
        if len(logical) < num_cpu_devices:
            raise ValueError(
                f"num_cpu_devices={num_cpu_devices} but TensorFlow was initialised with "
                f"{len(logical)} logical CPU devices; build the backend before running "
                "any TensorFlow op"
            )
        devices = [device.name for device in logical[:num_cpu_devices]]
        # Collective ops over logical CPUs: the default NCCL choice does not apply.
        strategy = tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    else:
        strategy = tf.distribute.MirroredStrategy()
    logging.info(
        "mirrored: %d replicas %s", strategy.num_replicas_in_sync, strategy.extended.worker_devices
    )
    return StrategyBackend(strategy, "mirrored")


class MultiWorkerBackend(StrategyBackend):
    """MultiWorkerMirroredStrategy from `TF_CONFIG` (one process per worker)."""

    def __init__(self, communication: str = "auto"):
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("distribution 'multiworker' needs TF_CONFIG (cluster and task)")
        implementations = tf.distribute.experimental.CommunicationImplementation
        if communication.upper() not in implementations.__members__:
            raise ValueError(
                f"communication must be one of auto, ring, nccl; got {communication!r}"
            )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=implementations[communication.upper()]
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        super().__init__(strategy, "multiworker")
        self._num_workers, self._worker_index = worker_topology(strategy.cluster_resolver)

    @property
    def worker_index(self) -> int:
        return self._worker_index

    @property
    def checkpoint_on_every_worker(self) -> bool:
        return True

    @property
    def num_workers(self) -> int:
        return self._num_workers

    def sum_across_workers(self, value):
        value = tf.convert_to_tensor(value)
        calls = []

        def local_value(context: tf.distribute.experimental.ValueContext):
            # Each worker adds its host value once: on its first local replica.
            calls.append(context.replica_id_in_sync_group)
            return value if len(calls) == 1 else tf.zeros_like(value)

        per_replica = self.strategy.experimental_distribute_values_from_function(local_value)
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
