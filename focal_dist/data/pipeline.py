"""Turning a data set into this pipeline's per-replica batches.

Two ways to split a global batch between input pipelines:

* `split_global_batches` (exact): every pipeline reads the same stream, batches it by
  the global batch size and keeps its slice, so global step k holds the same examples
  under every distribution, a short last batch included. The synthetic data (generated,
  not read) and evaluation (each example once, the same number of steps on every
  worker) use it.
* `split_in_memory` (exact, the same order as a full shuffle would give): the same split
  for a data set held in memory as one batch (the synthetic data); one gather per epoch
  puts the rows in order and each step is a slice of it, with no tf.data function run
  per step, so it costs the loop almost nothing.
* `shard_then_batch`: each pipeline reads its own files or records (data/readers/)
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
    finish=None,
) -> tf.data.Dataset:
    """Per-replica batches of the global batches of an unbatched `examples` stream.

    Each epoch is shuffled (seeded: the same order on every worker and every run) and
    batched by `global_batch_size`, so its last global batch may be short. Pipeline p
    keeps the slice [p * B_p, (p + 1) * B_p) of every global batch (B_p its replicas'
    share) and hands its local replicas consecutive pieces; a slice past the end of a
    short batch is an empty batch, so every replica takes part in every step.
    `skip_global_batches` resumes a run exactly where a checkpoint left it. `finish`
    maps each batch before the prefetch (on tf.data's threads, not the training loop's).
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
    return finish_batches(dataset, finish)


def finish_batches(dataset: tf.data.Dataset, finish=None) -> tf.data.Dataset:
    """Maps `finish` over the batches on tf.data's threads, then prefetches."""
    if finish is not None:
        dataset = dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def split_in_memory(
    whole: tf.data.Dataset,
    num_examples: int,
    info: InputInfo,
    *,
    global_batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = True,
    skip_global_batches: int = 0,
    finish=None,
) -> tf.data.Dataset:
    """Per-replica batches of a data set held in memory as one element.

    `whole` yields the whole data set, n = `num_examples` rows, as one batch (cache it).
    Epoch e visits the rows in the order π_e: the identity, or with `shuffle` a
    permutation drawn from (seed, e) alone, so every worker and every run sees the same
    order. Global batch b of an epoch is π_e[b·G : min((b+1)·G, n)] (G the global batch
    size; the last may be short), and replica r of pipeline p takes its slice
    [(p·R + r)·B, (p·R + r + 1)·B) of it, clipped to the batch (empty past its end), as
    `split_global_batches` does. `skip_global_batches` starts the stream that many global
    batches in, exactly, without visiting the skipped ones. `finish` must map rows one by
    one (casts, reshapes of the label): it is applied to the whole set once per epoch.
    """
    per_replica = info.per_replica_batch_size
    replicas = info.replicas_per_pipeline
    batches_per_epoch = -(-num_examples // global_batch_size)
    full_batches, short = divmod(num_examples, global_batch_size)
    first_epoch, skip_in_epoch = divmod(skip_global_batches, batches_per_epoch)
    # This pipeline's replicas' slices, as ranks among the G / B slices of a global batch.
    first_slice = info.pipeline_id * replicas
    slices = global_batch_size // per_replica
    # The short last batch's pieces: rows [lo, hi) of the epoch, empty past its end.
    end = num_examples
    short_start = full_batches * global_batch_size
    short_pieces = [
        (min(lo, end), min(lo + per_replica, end))
        for lo in (short_start + (first_slice + r) * per_replica for r in range(replicas))
    ]

    # Python-only control flow: autograph's source rewrite at every trace is pure cost.
    @tf.autograph.experimental.do_not_convert
    def epoch_batches(epoch, rows):
        # One gather per epoch puts the rows in epoch order; every element after that is
        # a slice of it, so tf.data runs no function per step.
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(
                tf.range(num_examples, dtype=tf.int64), seed=tf.stack([seed, epoch])
            )
            rows = tf.nest.map_structure(lambda t: tf.gather(t, order), rows)

        def whole_batches(t):
            # [full, G/B, B, ...] -> this pipeline's [full * R, B, ...], in step order.
            shape = [full_batches, slices, per_replica, *t.shape[1:]]
            t = tf.reshape(t[: full_batches * global_batch_size], shape)
            t = t[:, first_slice : first_slice + replicas]
            return tf.reshape(t, [full_batches * replicas, per_replica, *t.shape[3:]])

        batches = tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(whole_batches, rows))
        for lo, hi in short_pieces if short else ():
            piece = tf.nest.map_structure(lambda t, lo=lo, hi=hi: t[lo:hi], rows)
            batches = batches.concatenate(tf.data.Dataset.from_tensors(piece))
        return batches

    epochs = tf.data.Dataset.range(first_epoch, first_epoch + 1)
    if repeat:
        epochs = tf.data.Dataset.range(first_epoch, 2**62)
    if finish is not None:  # row-wise: mapping the whole set maps every batch of it
        whole = whole.map(finish)
    data = whole.repeat() if repeat else whole.take(1)
    dataset = tf.data.Dataset.zip(epochs, data).flat_map(
        lambda epoch, *rows: epoch_batches(epoch, _unpack(rows))
    )
    return dataset.skip(skip_in_epoch * replicas).prefetch(tf.data.AUTOTUNE)


def _unpack(batch):
    return batch[0] if len(batch) == 1 else batch


def shard_then_batch(
    dataset: tf.data.Dataset,
    info: InputInfo,
    *,
    shuffle_buffer: int = 0,
    seed: int = 0,
    skip_batches: int = 0,
    finish=None,
) -> tf.data.Dataset:
    """Repeats, shuffles and batches an already sharded, unbatched dataset per replica."""
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed + info.pipeline_id)
    dataset = dataset.repeat().batch(info.per_replica_batch_size)
    return finish_batches(dataset.skip(skip_batches), finish)
