"""Turning a data set into this pipeline's per-replica batches.

Two ways to split a global batch between input pipelines:

* `split_global_batches` (exact): every pipeline reads the same stream, batches it by
  the global batch size and keeps its slice, so global step k holds the same examples
  under every distribution, a short last batch included. The synthetic data (generated,
  not read) and evaluation (each example once, the same number of steps on every
  worker) use it.
* `shard_then_batch`: each pipeline reads its own files or records (data/sources.py)
  and batches them; for training from files, where reading everything everywhere would
  cost N times the I/O.
"""

from __future__ import annotations

import tensorflow as tf

from focal_dist.distribute import InputInfo


def _slice(structure, start, size):
    return tf.nest.map_structure(lambda t: t[start : start + size], structure)


def split_global_batches(
    examples: tf.data.Dataset,
    info: InputInfo,
    *,
    global_batch_size: int,
    shuffle_buffer: int = 0,
    seed: int = 0,
    repeat: bool = True,
    skip_global_batches: int = 0,
) -> tf.data.Dataset:
    """Per-replica batches of the global batches of an unbatched `examples` stream.

    Each epoch is shuffled (seeded: the same order on every worker and every run) and
    batched by `global_batch_size`, so its last global batch may be short. Pipeline p
    keeps the slice [p * B_p, (p + 1) * B_p) of every global batch (B_p its replicas'
    share) and hands its local replicas consecutive pieces; a slice past the end of a
    short batch is an empty batch, so every replica takes part in every step.
    `skip_global_batches` resumes a run exactly where a checkpoint left it.
    """
    dataset = examples
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(global_batch_size)
    if repeat:
        dataset = dataset.repeat()
    if skip_global_batches:
        dataset = dataset.skip(skip_global_batches)
    per_replica = info.per_replica_batch_size
    replicas = info.replicas_per_pipeline
    start = info.pipeline_id * per_replica * replicas
    if replicas == 1:
        dataset = dataset.map(lambda *batch: _slice(_unpack(batch), start, per_replica))
    else:
        dataset = dataset.flat_map(
            lambda *batch: tf.data.Dataset.range(replicas).map(
                lambda r: _slice(_unpack(batch), start + r * per_replica, per_replica)
            )
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _unpack(batch):
    return batch[0] if len(batch) == 1 else batch


def shard_then_batch(
    dataset: tf.data.Dataset, info: InputInfo, *, shuffle_buffer: int = 0, seed: int = 0
) -> tf.data.Dataset:
    """Repeats, shuffles and batches an already sharded, unbatched dataset per replica."""
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed + info.pipeline_id)
    return dataset.repeat().batch(info.per_replica_batch_size).prefetch(tf.data.AUTOTUNE)
