"""The interface every distribution backend implements.

Only this package knows whether tf.distribute or Horovod is underneath: the losses, the
label histogram and the training loop talk to a `Backend`, and no other module branches
on the backend's kind. Where a replica count, a pipeline count or a collective enters
the program, it enters through one of these methods.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Callable, Sequence

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class InputInfo:
    """What one input pipeline needs to read its shard of a global batch.

    Attributes:
      pipeline_id: this pipeline, in [0, num_pipelines).
      num_pipelines: input pipelines over all workers (one per worker or process).
      per_replica_batch_size: examples each replica takes from a global batch.
      replicas_per_pipeline: replicas fed by this pipeline (local devices).
      global_batch_size: examples in one global step over all replicas (0: unknown).
      seed: the run's seed, the same on every worker (shuffle with it).
      skip_global_batches: global batches already trained on (a resumed run starts
        this far into the stream).
    """

    pipeline_id: int
    num_pipelines: int
    per_replica_batch_size: int
    replicas_per_pipeline: int = 1
    global_batch_size: int = 0
    seed: int = 0
    skip_global_batches: int = 0


def per_replica_batch_size(global_batch_size: int, num_replicas: int, *, where: str = "") -> int:
    """global_batch_size / num_replicas; ValueError naming both unless it divides evenly.

    Every replica takes the same share of a global batch (the step pads the short last
    one), so the division must be exact.
    """
    if global_batch_size % num_replicas:
        raise ValueError(
            f"train.global_batch_size {global_batch_size} is not divisible by the "
            f"{num_replicas} replicas" + (f" of {where}" if where else "")
        )
    return global_batch_size // num_replicas


class Backend(abc.ABC):
    """What the rest of focal_dist needs from a distribution backend."""

    name: str = "abstract"

    # --- topology -------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def num_replicas_in_sync(self) -> int:
        """Replicas whose gradients are summed in one global step, over all workers."""

    @property
    def collectives_are_identity(self) -> bool:
        """True when a sum over replicas builds no collective op (one replica whose sum
        is the value itself): the whole step can then be one XLA cluster."""
        return False

    @property
    def worker_index(self) -> int:
        """This worker's (process's) rank among all workers."""
        return 0

    @property
    def num_workers(self) -> int:
        return 1

    @property
    def is_chief(self) -> bool:
        """The worker that writes logs, checkpoints and exports (rank 0)."""
        return self.worker_index == 0

    @property
    def num_input_pipelines(self) -> int:
        """One input pipeline per worker: the unit of dataset sharding."""
        return self.num_workers

    @property
    def input_pipeline_id(self) -> int:
        return self.worker_index

    def input_info(self, global_batch_size: int) -> InputInfo:
        """Splits `global_batch_size` over the replicas; it must divide evenly."""
        return InputInfo(
            pipeline_id=self.input_pipeline_id,
            num_pipelines=self.num_input_pipelines,
            per_replica_batch_size=per_replica_batch_size(
                global_batch_size, self.num_replicas_in_sync, where=f"backend {self.name!r}"
            ),
            replicas_per_pipeline=self.num_replicas_in_sync // self.num_input_pipelines,
            global_batch_size=global_batch_size,
        )

    # --- placement and execution ------------------------------------------------------
    def scope(self):
        """Variables created inside are placed (and mirrored) for this backend."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def distribute_dataset(
        self, dataset_fn: Callable[[InputInfo], tf.data.Dataset], global_batch_size: int
    ):
        """An iterable of per-replica batches from `dataset_fn(InputInfo)`.

        `dataset_fn` returns this pipeline's shard batched by `per_replica_batch_size`
        (as tf.distribute's `distribute_datasets_from_function` requires); a pipeline
        feeding several local replicas hands them consecutive batches, so one global
        step takes `global_batch_size` consecutive examples per pipeline.
        """

    @abc.abstractmethod
    def run(self, fn: Callable, args: Sequence = ()):
        """Runs `fn(*args)` on every local replica; returns per-replica results."""

    # --- collectives ------------------------------------------------------------------
    @abc.abstractmethod
    def all_reduce_sum(self, value):
        """SUM over every replica; inside a step (replica context)."""

    @abc.abstractmethod
    def reduce_sum(self, per_replica_value):
        """SUM of a per-replica result of `run` over all replicas, on the host."""

    def local_results(self, per_replica_value) -> tuple:
        """The values of a per-replica result on this worker's replicas."""
        return (per_replica_value,)

    @abc.abstractmethod
    def sum_across_workers(self, value: tf.Tensor) -> tf.Tensor:
        """SUM of a host tensor over workers, each worker counted once (outside a step)."""

    # --- agreement: the chief decides, every worker gets the same answer --------------
    def any_worker(self, flag: bool) -> bool:
        """True on every worker if `flag` is true on at least one (one collective)."""
        flags = self.sum_across_workers(tf.constant([1.0 if flag else 0.0]))
        return bool(flags.numpy()[0] > 0)

    def raise_together(self, error: Exception | None, elsewhere: Exception) -> None:
        """If any worker has an `error`, raises it where it happened and `elsewhere` on
        every other worker; returns on every worker otherwise (one collective). A refusal
        found by one worker stops all of them, none left waiting in the next collective.
        """
        if self.any_worker(error is not None):
            raise error if error is not None else elsewhere

    def chief_value(self, value: float) -> float:
        """The chief's `value` on every worker (exact for integers below 2**53)."""
        mine = float(value) if self.is_chief else 0.0
        return float(self.sum_across_workers(tf.constant([mine], tf.float64))[0])

    def broadcast_variables(self, variables) -> None:
        """Makes every worker start from the chief's values (Horovod); else a no-op."""

    def aggregate_gradients(self, gradients):
        """SUM of gradients over replicas, for an optimizer that does not sum itself."""
        return gradients

    @property
    def checkpoint_on_every_worker(self) -> bool:
        """True where saving is collective, so non-chief workers save to scratch too."""
        return False

    def prepare_optimizer(self, optimizer) -> None:
        """Makes `optimizer.apply_gradients` apply the gradients it is given as they are.

        The training step sums gradients over replicas itself, once, before clipping;
        backends whose optimizer would sum them again turn that off here.
        """
