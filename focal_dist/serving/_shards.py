"""One worker's shard of a held-out split: checked here, agreed on by every worker.

Every serving function starts with the same handshake: each worker checks its own
arrays, then one fixed-size SUM over workers carries [any error, number of outputs,
this worker's example count in its own slot]. A worker whose arrays are wrong raises
its own message and every other worker raises too, instead of waiting forever in the
next collective; the counts give the split's size and each worker's offset in it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

# The data package's names: binary and multi_label are 0/1 [n, C], sparse is class ids.
LABEL_MODES = ("binary", "multi_label", "sparse")


def check_label_mode(label_mode: str, *, argument: str = "label_mode") -> str:
    if label_mode not in LABEL_MODES:
        raise ValueError(f"{argument} must be one of {', '.join(LABEL_MODES)}; got {label_mode!r}")
    return label_mode


@dataclasses.dataclass(frozen=True)
class Split:
    """This worker's checked arrays and what every worker agreed on.

    Attributes:
      values: float64 [n_local, C] logits or probabilities of this worker.
      labels: float64 0/1 [n_local, C] (binary, multi_label) or int64 ids [n_local].
      num_examples: N, the split's size over all workers.
      offset: index in the split of this worker's first example (workers in rank order).
    """

    values: np.ndarray
    labels: np.ndarray
    num_examples: int
    offset: int

    @property
    def num_outputs(self) -> int:
        return self.values.shape[1]


class _Invalid(ValueError):
    """This worker's arrays are wrong; raised after every worker has heard of it."""


def _check(values, labels, label_mode: str, what: str, probabilities: bool):
    """(values [n, C] float64, labels) of one worker's arrays, or _Invalid."""
    values = np.asarray(values, np.float64)
    if label_mode == "binary" and values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[1] < 1:
        raise _Invalid(f"{what} must have shape [n, C]; got {values.shape}")
    n, num_outputs = values.shape
    if label_mode == "binary" and num_outputs != 1:
        raise _Invalid(f"binary {what} must have shape [n, 1]; got {values.shape}")
    if not np.all(np.isfinite(values)):
        row = int(np.argwhere(~np.isfinite(values))[0, 0])
        raise _Invalid(f"{what} must be finite; local row {row} is {values[row].tolist()}")
    if probabilities and n and (values.min() < 0 or values.max() > 1):
        raise _Invalid(f"{what} must lie in [0, 1]; got [{values.min()}, {values.max()}]")
    labels = np.asarray(labels)
    if label_mode == "sparse":
        if labels.shape != (n,):
            raise _Invalid(f"sparse labels must have shape [{n}] (one id each); got {labels.shape}")
        whole = np.all(labels == np.round(labels)) if n else True
        if n and (not whole or labels.min() < 0 or labels.max() >= num_outputs):
            raise _Invalid(f"sparse labels must be ids in [0, {num_outputs}); got {labels[:8]}")
        return values, labels.astype(np.int64)
    if label_mode == "binary" and labels.ndim == 1:
        labels = labels[:, None]
    if labels.shape != (n, num_outputs) and labels.ndim == 1 and what == "probabilities":
        raise _Invalid(
            f"labels of shape {labels.shape} are class ids: a multi-class model decides by "
            "the argmax of its probabilities (evaluation.evaluate_argmax), not by thresholds"
        )
    if labels.shape != (n, num_outputs):
        raise _Invalid(
            f"{label_mode} labels must have the shape of {what}, {values.shape}; got {labels.shape}"
        )
    if n and not np.all((labels == 0) | (labels == 1)):
        raise _Invalid(f"{label_mode} labels must be 0 or 1; got values {np.unique(labels)[:8]}")
    return values, labels.astype(np.float64)


def agree(
    values, labels, *, label_mode: str, backend, what: str = "logits", probabilities: bool = False
) -> Split:
    """Checks this worker's arrays and exchanges sizes with every worker (one SUM).

    Raises:
      ValueError: on every worker, if any worker's arrays are wrong or workers disagree
        on the number of outputs C; the worker at fault names its array and value.
    """
    check_label_mode(label_mode)
    try:
        values, labels = _check(values, labels, label_mode, what, probabilities)
        error = None
    except _Invalid as invalid:
        error = str(invalid)
    rank, workers = backend.worker_index, backend.num_workers
    handshake = np.zeros(2 + workers)
    handshake[0] = 1.0 if error else 0.0
    handshake[1] = 0.0 if error else values.shape[1]
    handshake[2 + rank] = 0.0 if error else values.shape[0]
    total = sum_over_workers(backend, handshake)
    if error:
        raise ValueError(f"worker {rank}: {error}")
    if total[0]:
        raise ValueError(
            f"{int(total[0])} other worker(s) passed invalid {what} or labels (see their error)"
        )
    if total[1] != workers * values.shape[1]:
        raise ValueError(
            f"workers disagree on the number of outputs: worker {rank} has "
            f"{values.shape[1]}, the sum over {workers} workers is {int(total[1])}"
        )
    counts = total[2:].astype(np.int64)
    num_examples = int(counts.sum())
    if num_examples == 0:
        raise ValueError(f"the split is empty: no worker passed any {what}")
    return Split(values, labels, num_examples, int(counts[:rank].sum()))


def sum_over_workers(backend, values: np.ndarray) -> np.ndarray:
    """`values` (float64, any shape) summed over workers by one `sum_across_workers`."""
    values = np.asarray(values, np.float64)
    total = backend.sum_across_workers(tf.constant(values.ravel(), tf.float64))
    return np.asarray(total.numpy(), np.float64).reshape(values.shape)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float64 [n, C] 0/1 rows of class ids [n]."""
    return np.eye(num_classes)[labels] if labels.size else np.zeros((0, num_classes))
