"""Label counts over every worker's shard: each example counted once, in int64.

Each input pipeline counts the labels of its own shard in int64 inside a tf.function;
the counts are then SUM-all-reduced over workers through the backend, so every example
is counted exactly once and totals stay exact past 2^31.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from focal_dist.class_weights import dataset_graph
from focal_dist.data.label_modes import COUNTED_LABEL_MODES as LABEL_MODES
from focal_dist.distribute import Backend, InputInfo
from focal_dist.distribute.resolve import resolve_backend


@dataclasses.dataclass(frozen=True)
class LabelHistogram:
    """Label counts over the whole dataset.

    Attributes:
      counts: int64. binary: [negatives, positives]; multi_label: positives per class
        [C]; sparse and categorical: examples per class [C].
      num_examples: examples counted (each once, over all workers).
      label_mode: one of LABEL_MODES.
      num_classes: C (1 for binary).
    """

    counts: np.ndarray
    num_examples: int
    label_mode: str
    num_classes: int

    @property
    def positives(self) -> np.ndarray:
        """Positives per output (binary: [1], multi_label: [C])."""
        if self.label_mode == "binary":
            return self.counts[1:]
        if self.label_mode == "multi_label":
            return self.counts
        raise ValueError(f"positives is defined for binary and multi_label, not {self.label_mode}")

    @property
    def negatives(self) -> np.ndarray:
        return self.num_examples - self.positives

    def to_dict(self) -> dict:
        return {
            "label_mode": self.label_mode,
            "num_classes": self.num_classes,
            "num_examples": int(self.num_examples),
            "counts": [int(c) for c in self.counts],
        }


def _check_label_mode(label_mode: str, num_classes) -> int:
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {', '.join(LABEL_MODES)}; got {label_mode!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise ValueError(f"num_classes must be an int, got {num_classes!r}")
    if label_mode == "binary":
        if num_classes not in (1, 2):
            raise ValueError(
                f"num_classes for label_mode 'binary' must be 1 or 2, got {num_classes}"
            )
        return 1
    if num_classes < 1 or (label_mode != "multi_label" and num_classes < 2):
        raise ValueError(
            f"num_classes for label_mode {label_mode!r} must be >= 2, got {num_classes}"
        )
    return int(num_classes)


def _check_labels(is_valid, message: str, values):
    """InvalidArgumentError naming up to 10 values where `is_valid` is False.

    The offending values are gathered only in the failing branch, so a valid batch
    costs one reduction, not a boolean_mask.
    """

    def fail():
        bad = tf.boolean_mask(values, tf.logical_not(is_valid))[:10]
        with tf.control_dependencies([tf.debugging.Assert(False, [message, bad], summarize=10)]):
            return tf.constant(False)

    return tf.cond(tf.reduce_all(is_valid), lambda: tf.constant(True), fail)


def _batch_counter(label_mode: str, num_classes: int) -> Callable:
    """Returns labels -> (int64 counts, int64 examples) for one batch of labels."""

    def binary(labels):
        if labels.shape.rank is not None and labels.shape.rank >= 2 and labels.shape[-1] != 1:
            raise ValueError(
                f"binary labels must have shape [B] or [B, 1], got {labels.shape}; use "
                "label_mode='multi_label' for several outputs"
            )
        labels = tf.reshape(labels, [-1])
        is_valid = tf.logical_or(tf.equal(labels, 0), tf.equal(labels, 1))
        with tf.control_dependencies(
            [_check_labels(is_valid, "binary labels must be 0 or 1, got", labels)]
        ):
            positives = tf.reduce_sum(tf.cast(tf.equal(labels, 1), tf.int64))
        examples = tf.size(labels, out_type=tf.int64)
        return tf.stack([examples - positives, positives]), examples

    def multi_hot(labels, one_per_row: bool):
        labels = tf.reshape(labels, [-1, num_classes])
        is_valid = tf.logical_or(tf.equal(labels, 0), tf.equal(labels, 1))
        checks = [_check_labels(is_valid, f"{label_mode} labels must be 0 or 1, got", labels)]
        counts_per_row = tf.reduce_sum(tf.cast(tf.equal(labels, 1), tf.int64), axis=1)
        if one_per_row:
            checks.append(
                _check_labels(
                    tf.equal(counts_per_row, 1),
                    "categorical labels must be one-hot (one 1 per row); rows with",
                    counts_per_row,
                )
            )
        with tf.control_dependencies(checks):
            counts = tf.reduce_sum(tf.cast(tf.equal(labels, 1), tf.int64), axis=0)
        return counts, tf.shape(labels, out_type=tf.int64)[0]

    def sparse(labels):
        if labels.dtype.is_floating:
            is_integer = tf.equal(labels, tf.round(labels))
            check = _check_labels(is_integer, "sparse labels must be integers, got", labels)
            with tf.control_dependencies([check]):
                labels = tf.cast(labels, tf.int64)
        labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
        is_valid = tf.logical_and(labels >= 0, labels < num_classes)
        check = _check_labels(is_valid, f"sparse labels must be in [0, {num_classes}), got", labels)
        with tf.control_dependencies([check]):
            counts = tf.math.bincount(
                tf.cast(labels, tf.int32),
                minlength=num_classes,
                maxlength=num_classes,
                dtype=tf.int64,
            )
        return counts, tf.size(labels, out_type=tf.int64)

    counter = {
        "binary": binary,
        "multi_label": lambda labels: multi_hot(labels, one_per_row=False),
        "categorical": lambda labels: multi_hot(labels, one_per_row=True),
        "sparse": sparse,
    }[label_mode]
    # Python-only control flow: autograph's source rewrite at every trace is pure cost.
    return tf.autograph.experimental.do_not_convert(counter)


def _default_label_fn(element):
    if isinstance(element, (tuple, list)) and len(element) in (2, 3):
        return element[1]
    raise ValueError(
        "label_histogram expects elements (features, labels) or (features, labels, "
        f"sample_weight); got {type(element).__name__} {element!r:.200}. Pass label_fn= "
        "to pick the labels out of other structures"
    )


def label_histogram(
    dataset,
    *,
    num_classes: int,
    label_mode: str,
    backend: Backend | tf.distribute.Strategy | str | None = None,
    already_sharded: bool = False,
    label_fn: Callable | None = None,
    batch_size: int = 4096,
) -> LabelHistogram:
    """Counts labels over all workers, every example exactly once.

    Args:
      dataset: a `tf.data.Dataset` of the whole data set (the same on every worker: it is
        sharded here, one shard per input pipeline), or a function `InputInfo ->
        tf.data.Dataset` that returns this pipeline's own shard (as a training input
        function does; `per_replica_batch_size` is `batch_size`). Elements are
        `(features, labels)` or `(features, labels, sample_weight)`, batched or not.
      num_classes: C (binary: 1 or 2).
      label_mode: "binary" (0/1, shape [B] or [B, 1]), "multi_label" (multi-hot [B, C]),
        "sparse" (ids [B]) or "categorical" (one-hot [B, C]).
      backend: whose workers hold the data: a focal_dist.distribute Backend, a
        `tf.distribute.Strategy` (MirroredStrategy, MultiWorkerMirroredStrategy), or
        "horovod"; None is the strategy in scope (one device when none is).
      already_sharded: the Dataset is this worker's own shard (e.g.
        `dataset.shard(hvd.size(), hvd.rank())`): its counts are summed over workers as
        they are. Without it, a dataset that contains a `shard()` is refused rather than
        counted in part; so is an unseeded `shuffle()` before the shard point when there
        is more than one input pipeline (each worker would shuffle differently).
      label_fn: element -> labels, for other element structures.
      batch_size: batch size asked of a dataset function.

    Returns:
      The LabelHistogram, identical on every worker.

    Raises:
      ValueError: a bad argument, or a dataset whose sharding would not count every
        example once (the message says what to pass).
      tf.errors.InvalidArgumentError: a label outside the declared classes (its value is
        in the message).
    """
    num_classes = _check_label_mode(label_mode, num_classes)
    backend = resolve_backend(backend)
    if callable(dataset) and not isinstance(dataset, tf.data.Dataset):
        if already_sharded:
            raise ValueError(
                "already_sharded=True is for a Dataset; a dataset function returns its "
                "pipeline's shard by contract"
            )
        local = dataset(
            InputInfo(
                pipeline_id=backend.input_pipeline_id,
                num_pipelines=backend.num_input_pipelines,
                per_replica_batch_size=batch_size,
            )
        )
    elif isinstance(dataset, tf.data.Dataset):
        local = dataset_graph.local_shard(dataset, backend, already_sharded=already_sharded)
    else:
        raise ValueError(
            f"dataset must be a tf.data.Dataset or a function InputInfo -> Dataset, got "
            f"{type(dataset).__name__}"
        )
    count_batch = _batch_counter(label_mode, num_classes)
    extract = label_fn or _default_label_fn
    width = 2 if label_mode == "binary" else num_classes

    def per_batch(*element):
        element = element[0] if len(element) == 1 else element
        counts, examples = count_batch(tf.convert_to_tensor(extract(element)))
        return tf.concat([counts, [examples]], axis=0)

    # Counting runs in the parallel map; the reduce only adds int64 vectors. Called
    # eagerly, `reduce` is one op that drains the dataset in C++: no outer tf.function
    # to trace again on every call (and no retracing warning for callers counting
    # several datasets).
    local_counts = local.map(per_batch, num_parallel_calls=tf.data.AUTOTUNE).reduce(
        tf.zeros([width + 1], tf.int64), lambda total, counts: total + counts
    )
    return summed_histogram(
        local_counts, num_classes=num_classes, label_mode=label_mode, backend=backend
    )


def summed_histogram(
    local_counts, *, num_classes: int, label_mode: str, backend: Backend | None = None
) -> LabelHistogram:
    """The LabelHistogram of every worker's own counts, summed (one all-reduce).

    Args:
      local_counts: int64 [W + 1] of this worker's shard, counted as `label_histogram`
        counts: W = 2 for binary (negatives, positives), else C; then the examples.
      num_classes, label_mode: as `label_histogram`'s.
      backend: as `label_histogram`'s.
    """
    num_classes = _check_label_mode(label_mode, num_classes)
    width = 2 if label_mode == "binary" else num_classes
    local_counts = tf.constant(np.asarray(local_counts, np.int64))
    if local_counts.shape != [width + 1]:
        raise ValueError(
            f"local_counts must have {width + 1} values ({width} counts, then the examples) "
            f"for label_mode {label_mode!r} with num_classes={num_classes}; got shape "
            f"{local_counts.shape}"
        )
    totals = resolve_backend(backend).sum_across_workers(local_counts).numpy().astype(np.int64)
    return LabelHistogram(
        counts=totals[:width],
        num_examples=int(totals[width]),
        label_mode=label_mode,
        num_classes=num_classes,
    )
