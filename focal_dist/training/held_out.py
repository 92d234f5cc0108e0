"""Held-out splits (eval, calibration), one replica batch at a time, exact over replicas.

`eval_step` sums over every replica, in float64, one flat vector per batch:

    [task statistics (the Evaluation's), s_1..s_T, n_1..n_T, rows]

so the eval loss is sum_t w_t S_t / max(N_t, floor_t) over the whole split and every
count is exact. `score_step` hands back each replica's logits, labels and row validity
(no collective) for calibration and thresholds, which sum over workers themselves.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class HeldOutStep:
    """The `tf.function`s of evaluation and scoring for one model under `backend`."""

    def __init__(self, *, model, backend, terms, evaluation, pad):
        self.model = model
        self.backend = backend
        self.terms = terms
        self.evaluation = evaluation
        self.pad = pad
        self.eval_step = tf.function(self._eval_step, autograph=False)
        self.score_step = tf.function(self._score_step, autograph=False)

    def _logits(self, features):
        return tf.cast(self.model(features, training=False), tf.float32)

    def _eval_replica(self, batch):
        features, labels, valid = self.pad(batch)
        logits = self._logits(features)
        sums, counts = self.terms.sums_and_counts(labels, logits, valid)
        statistics = tf.cast(self.evaluation.statistics(labels, logits, valid), tf.float64)
        # One flat vector, so one collective per eval step (several concurrent Horovod
        # all-reduces in one graph were seen to stall on 2 cores).
        return tf.concat(
            [
                statistics,
                tf.cast(sums, tf.float64),
                tf.cast(counts, tf.float64),
                tf.cast([tf.reduce_sum(valid)], tf.float64),
            ],
            axis=0,
        )

    def _eval_step(self, batch):
        """[evaluation statistics, term sums, term counts, rows], summed over replicas."""
        return self.backend.reduce_sum(self.backend.run(self._eval_replica, args=(batch,)))

    def _score_replica(self, batch):
        features, labels, valid = self.pad(batch)
        return self._logits(features), labels, valid

    def _score_step(self, batch):
        """Per replica: (logits, labels, valid) of its padded batch; no collective."""
        return self.backend.run(self._score_replica, args=(batch,))

    @property
    def vector_size(self) -> int:
        """Length of the vector `eval_step` returns."""
        return self.evaluation.size + 2 * len(self.terms.terms) + 1

    def split_totals(self, totals):
        """(evaluation statistics, eval loss, rows) from the summed eval vectors."""
        size, count = self.evaluation.size, len(self.terms.terms)
        sums, counts = totals[size : size + count], totals[size + count : size + 2 * count]
        loss = 0.0
        for term, s, n in zip(self.terms.terms, sums, counts, strict=True):
            denominator = max(n, term.floor)
            loss += term.weight * s / denominator if denominator > 0 else 0.0
        return totals[:size], loss, totals[-1]

    def evaluate(self, dataset) -> tuple[dict, np.ndarray]:
        """(metrics with `loss` and `num_examples`, summed statistics) of a distributed
        dataset of the split."""
        totals = np.zeros(self.vector_size)
        for batch in dataset:
            totals += self.eval_step(batch).numpy()
        statistics, loss, rows = self.split_totals(totals)
        metrics = self.evaluation.metrics(statistics)
        metrics["loss"] = float(loss)
        metrics["num_examples"] = float(rows)
        return metrics, statistics

    def score(self, dataset) -> tuple[np.ndarray, np.ndarray]:
        """This worker's (logits, labels) of the split's rows (padding dropped)."""
        logits, labels = [], []
        local = self.backend.local_results
        for batch in dataset:
            for z, y, valid in zip(*map(local, self.score_step(batch)), strict=True):
                keep = valid.numpy() > 0
                logits.append(z.numpy()[keep])
                labels.append(np.asarray(y.numpy())[keep])
        return np.concatenate(logits), np.concatenate(labels)
