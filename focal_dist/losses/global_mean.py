r"""The global mean of docs/design.md, implemented once for the trainer's step and for
`compute_global_loss` (users' own loops).

A loss is a sum of terms t, each with its own global denominator:

    L   = sum_t w_t * S_t / D_t
    S_t = sum over every replica r and every valid element e of l_te     (examples, pixels)
    D_t = max(sum_r n_rt, floor_t)

n_rt is replica r's count of term t: its valid elements (the sum of its mask), or the
term's own normaliser (a RetinaNet head's positive anchors). The floor is applied to the
global sum, never per replica. Replica r holds only s_rt and n_rt; once the n_rt are
summed (one collective of a [T] vector), its share

    J_r = sum_t w_t * s_rt / D_t          satisfies    sum_r J_r = L

so gradients SUMMED over replicas are the gradient of L, whatever the number of
replicas, a short last batch or empty replicas. D_t = 0 (nothing valid, no floor) gives
a term of 0, not NaN. Counts are known from the labels alone, before the forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf


# Python-only control flow: autograph's source rewrite at every trace is pure cost.
@tf.autograph.experimental.do_not_convert
def masked_sum_and_count(values: tf.Tensor, mask: tf.Tensor | None = None):
    """(s, n): the sum of `values` where `mask` is non-zero, and the sum of `mask`.

    `mask` (0/1 or booleans) has the shape of `values`; None counts every element. A
    masked-out element adds 0 even when its value is NaN or inf (padding rows, ignored
    pixels whose loss was never meant to be read).
    """
    if mask is None:
        return tf.reduce_sum(values), tf.cast(tf.size(values), values.dtype)
    mask = tf.cast(mask, values.dtype)
    return tf.reduce_sum(tf.where(mask > 0, values * mask, tf.zeros_like(values))), (
        tf.reduce_sum(mask)
    )


def denominators(
    local_counts: tf.Tensor,
    all_reduce_sum: Callable[[tf.Tensor], tf.Tensor],
    floors: Sequence[float] | None = None,
) -> tf.Tensor:
    """D = max(all_reduce_sum(n_r), floor): the global denominators of every term.

    `local_counts` is this replica's n_r (a scalar or a [T] vector); `all_reduce_sum`
    sums it over every replica (one collective; the identity on one device).
    """
    counts = all_reduce_sum(local_counts)
    if floors is not None and any(floors):
        counts = tf.maximum(counts, tf.constant(list(floors), counts.dtype))
    return counts


def share(
    local_sums: tf.Tensor, global_denominators: tf.Tensor, weights: Sequence[float] | None = None
) -> tf.Tensor:
    """J_r = sum_t w_t * s_rt / D_t: this replica's share of L (0 for a term with D_t = 0)."""
    terms = tf.math.divide_no_nan(local_sums, tf.cast(global_denominators, local_sums.dtype))
    if weights is not None and any(w != 1 for w in weights):
        terms = terms * tf.constant(list(weights), terms.dtype)
    return tf.reduce_sum(terms)
