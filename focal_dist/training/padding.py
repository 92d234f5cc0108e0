"""Every replica batch at a fixed row count, the padding masked everywhere after."""

from __future__ import annotations

import tensorflow as tf


# Python-only control flow: autograph's source rewrite at every trace is pure cost.
@tf.autograph.experimental.do_not_convert
def pad_replica_batch(batch, size: int | None):
    """(features, labels, valid): the replica batch padded to `size` rows.

    A short last global batch leaves some replicas few or no examples (on purpose:
    every distribution sees the same examples per step). Padding to `size` rows with
    `valid` = 0 keeps every shape static (one XLA compilation) and never hands a layer an
    empty batch (oneDNN's Conv2D returns a wrong shape for [0, H, W, C]). Padding rows
    add nothing to the loss, the counts or the metrics. `size` None: no padding.
    """
    features, labels = batch
    count = tf.shape(tf.nest.flatten(labels)[0])[0]
    if size is None:
        return features, labels, tf.ones([count], tf.float32)

    def pad(tensor):
        paddings = [[0, size - count]] + [[0, 0]] * (tensor.shape.rank - 1)
        padded = tf.pad(tensor, paddings)
        return tf.ensure_shape(padded, [size, *tensor.shape[1:]])

    valid = tf.sequence_mask(count, size, dtype=tf.float32)
    return tf.nest.map_structure(pad, features), tf.nest.map_structure(pad, labels), valid
