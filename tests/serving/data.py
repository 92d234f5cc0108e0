"""Known held-out splits for the serving tests, shared by the tests and their workers.

Each split has logits of a deliberately miscalibrated model: the true log-odds u,
labels drawn from them, and logits z = 2u + 1.5 (over-confident, shifted), as class
weights and focal loss leave a model.
"""

import numpy as np

NUM_EXAMPLES = 3001  # no convenient divisor
NUM_LABELS = 4
NUM_CLASSES = 5


def binary(seed: int = 0, n: int = NUM_EXAMPLES, rate_shift: float = -3.0):
    rng = np.random.default_rng(seed)
    u = rng.normal(rate_shift, 1.5, size=(n, 1))
    labels = (rng.random((n, 1)) < 1 / (1 + np.exp(-u))).astype(np.float64)
    return (2 * u + 1.5).astype(np.float32), labels


def multi_label(seed: int = 1, n: int = NUM_EXAMPLES):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, NUM_LABELS)) * [1.0, 1.5, 2.0, 0.5] + [-4.0, -2.5, -1.0, 0.5]
    labels = (rng.random(u.shape) < 1 / (1 + np.exp(-u))).astype(np.float64)
    return (u * [2.0, 0.5, 1.0, 3.0] + [1.0, -1.0, 0.0, 2.0]).astype(np.float32), labels


def sparse(seed: int = 2, n: int = NUM_EXAMPLES):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, NUM_CLASSES)) * 1.5 + np.log([0.55, 0.2, 0.15, 0.07, 0.03])
    p = np.exp(u - u.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return (3 * u + [1.0, 0.0, -1.0, 2.0, 0.5]).astype(np.float32), labels.astype(np.int64)


def shard(arrays, bounds, rank):
    """Rows [bounds[rank], bounds[rank + 1]) of each array: worker `rank`'s shard."""
    return tuple(a[bounds[rank] : bounds[rank + 1]] for a in arrays)
