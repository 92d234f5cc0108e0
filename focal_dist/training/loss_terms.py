"""A task's loss terms on one replica: masks, counts and sums (no collective here).

For each `LossTerm` t and a padded replica batch with row validity `valid` [B]:

    m_t = mask_t(labels) * valid     (valid alone for a per-example term)
    n_t = normalizer_t(labels, m_t)  or sum(m_t)
    s_t = sum over elements of m_t * l_t,   l_t = per_element_t(labels, logits)

The counts need the labels only, so the step can sum them over replicas before the
forward pass; a loss whose shape is not its mask's is refused at trace time, naming both.
"""

from __future__ import annotations

import tensorflow as tf

from focal_dist.losses import global_mean


class LocalTerms:
    """The terms of one task, evaluated on one replica's batch."""

    def __init__(self, terms):
        if not terms:
            raise ValueError("a task needs at least one loss term; loss_terms() returned none")
        names = [term.name for term in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"loss term names must be unique; got {names}")
        for term in terms:
            if term.floor < 0 or term.weight < 0:
                raise ValueError(
                    f"loss term {term.name!r}: floor and weight must be >= 0; got "
                    f"floor={term.floor!r}, weight={term.weight!r}"
                )
        self.terms = tuple(terms)
        self.names = tuple(names)
        self.weights = tuple(float(t.weight) for t in terms)
        self.floors = tuple(float(t.floor) for t in terms)

    def masks(self, labels, valid):
        """m_t for every term: the term's own mask times the row validity."""
        result = []
        for term in self.terms:
            if term.mask is None:
                result.append(valid)
                continue
            mask = tf.cast(term.mask(labels), tf.float32)
            rank = mask.shape.rank
            if rank is None or rank < 1:
                raise ValueError(
                    f"loss term {term.name!r}: mask(labels) must have a batch axis; got "
                    f"shape {mask.shape}"
                )
            result.append(mask * tf.reshape(valid, [-1] + [1] * (rank - 1)))
        return result

    def counts(self, labels, valid, masks=None) -> tf.Tensor:
        """[T] float32: n_t of this replica, from the labels alone."""
        masks = self.masks(labels, valid) if masks is None else masks
        counts = []
        for term, mask in zip(self.terms, masks, strict=True):
            if term.normalizer is None:
                counts.append(tf.reduce_sum(mask))
            else:
                count = tf.cast(term.normalizer(labels, mask), tf.float32)
                if count.shape.rank not in (None, 0):
                    raise ValueError(
                        f"loss term {term.name!r}: normalizer must return a scalar (this "
                        f"replica's count); got shape {count.shape}"
                    )
                counts.append(count)
        return tf.stack(counts)

    def sums_and_counts(self, labels, logits, valid):
        """([T] s_t, [T] n_t) of this replica."""
        masks = self.masks(labels, valid)
        sums = []
        for term, mask in zip(self.terms, masks, strict=True):
            values = tf.cast(term.per_element(labels, logits), tf.float32)
            _check_shape(term, values, mask)
            sums.append(global_mean.masked_sum_and_count(values, mask)[0])
        return tf.stack(sums), self.counts(labels, valid, masks)


def _check_shape(term, values, mask) -> None:
    if values.shape.is_compatible_with(mask.shape) and values.shape.rank == mask.shape.rank:
        return
    hint = (
        "a per-example loss returns one value per example; for a per-element (per-pixel) "
        "loss, declare a focal_dist.tasks.LossTerm whose mask has that shape"
        if term.mask is None
        else "per_element and mask must return the same shape"
    )
    raise ValueError(
        f"loss term {term.name!r} returned shape {values.shape.as_list()}; expected "
        f"{mask.shape.as_list()} (its mask's shape): {hint}"
    )
