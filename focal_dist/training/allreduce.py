"""How a step's gradients travel: buckets in the order the backward pass produces them.

`buckets` groups gradients, from the last layer's to the first's, into collectives of
about `bucket_bytes` each; each bucket's SUM all-reduce depends only on its own
gradients, so the executor starts it while the backward pass still computes the
earlier layers' (Horovod's ops are stateless and asynchronous; TF's collectives run in
launch order, which is this order). `compress`/`decompress` send a bucket as float16
or bfloat16, as Horovod's `Compression.fp16` does: not exact, off by default.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

COMPRESSIONS = {"none": None, "float16": tf.float16, "bfloat16": tf.bfloat16}
# `train.allreduce = "auto"` overlaps from this many bytes of gradients on.
AUTO_OVERLAP_BYTES = 4 << 20


def buckets(tensors, bucket_bytes: int) -> list[list[int]]:
    """Indices of `tensors` in groups of about `bucket_bytes`, last tensor first.

    Variables are listed input to output, so the backward pass yields them roughly in
    reverse; a bucket closes once it holds at least `bucket_bytes` (0: one bucket).
    """
    groups, current, size = [], [], 0
    for index in reversed(range(len(tensors))):
        tensor = tensors[index]
        if tensor is None:
            continue
        current.append(index)
        elements = tensor.shape.num_elements()
        size += (elements if elements is not None else 1) * tensor.dtype.size
        if bucket_bytes and size >= bucket_bytes:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups


def compress(tensors, compression: str):
    """The tensors as the wire dtype of `compression` (unchanged for "none")."""
    wire = COMPRESSIONS[compression]
    if wire is None:
        return list(tensors)
    return [tf.cast(t, wire) if t.dtype.is_floating else t for t in tensors]


def decompress(tensors, like):
    """The tensors back in the dtypes of `like`."""
    return [tf.cast(t, original.dtype) for t, original in zip(tensors, like, strict=True)]


def all_reduce_in_buckets(backend, gradients, *, bucket_bytes: int, compression: str, extra=()):
    """SUM over replicas of every gradient, one collective per bucket.

    `extra` (small float32 tensors, e.g. the loss for logging) ride in the first bucket
    uncompressed. Returns (summed gradients in the order given, summed extras). With one
    replica nothing is sent, so nothing is compressed.
    """
    if backend.num_replicas_in_sync == 1:
        compression = "none"
    dense = [tf.convert_to_tensor(g) if g is not None else None for g in gradients]
    summed: list = [None] * len(dense)
    extras = list(extra)
    for number, group in enumerate(buckets(dense, bucket_bytes)):
        originals = [dense[i] for i in group]
        sent = compress(originals, compression)
        riders = extras if number == 0 else []
        if riders and COMPRESSIONS[compression] is not None:
            # One collective carries one dtype (Horovod's grouped all-reduce, TF's packed
            # one): the float32 riders go first in their own, and the bucket waits for
            # it, so the update still consumes both (the step's ordering argument).
            reduced_riders = backend.aggregate_gradients(riders)
            with tf.control_dependencies(reduced_riders):
                sent = [tf.identity(t) for t in sent]
            reduced = [*backend.aggregate_gradients(sent), *reduced_riders]
        else:
            reduced = backend.aggregate_gradients([*sent, *riders])
        for i, value in zip(group, decompress(reduced[: len(group)], originals), strict=True):
            summed[i] = value
        if number == 0:
            extras = list(reduced[len(group) :])
    if not dense or all(g is None for g in dense):
        extras = backend.aggregate_gradients(extras) if extras else []
    return summed, extras


def mode_for(train, terms, model, backend) -> str:
    """`train.allreduce`; "auto" overlaps where the gradients are worth it (docs/benchmarks.md).

    One term and one replica, or under AUTO_OVERLAP_BYTES of gradients: "single", one
    collective (too little to overlap: its latency is all there is). Otherwise "overlap".
    """
    mode = train.allreduce
    if mode != "auto":
        return mode
    if train.allreduce_compression != "none":
        return "overlap"  # the only path that compresses
    gradient_bytes = sum(
        int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in model.trainable_variables
    )
    small = backend.num_replicas_in_sync == 1 or gradient_bytes < AUTO_OVERLAP_BYTES
    single = len(terms) == 1 and small
    return "single" if single else "overlap"
