"""Exact class weights from a label histogram counted over every worker's shard.

Each input pipeline counts the labels of its own shard in int64 inside a tf.function;
the counts are then SUM-all-reduced over workers through the backend, so every example
is counted exactly once and totals stay exact past 2^31. Weights and the focal alpha
are derived from the histogram on the host.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from focal_dist import dataset_graph
from focal_dist.distribute import Backend, InputInfo
from focal_dist.distribute.resolve import resolve_backend

LABEL_MODES = ("binary", "multi_label", "sparse", "categorical")
SCHEMES = ("balanced", "inverse", "inverse_sqrt", "effective_number")


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

    return {
        "binary": binary,
        "multi_label": lambda labels: multi_hot(labels, one_per_row=False),
        "categorical": lambda labels: multi_hot(labels, one_per_row=True),
        "sparse": sparse,
    }[label_mode]


def _default_label_fn(element):
    if isinstance(element, (tuple, list)) and len(element) in (2, 3):
        return element[1]
    raise ValueError(
        "label_histogram expects elements (features, labels) or (features, labels, "
        f"sample_weight); got {type(element).__name__} {element!r:.200}. Pass label_fn= "
        "to pick the labels out of other structures"
    )


def _local_dataset(dataset: tf.data.Dataset, backend: Backend, already_sharded: bool):
    """This pipeline's part of `dataset`, refusing what would count examples twice or never."""
    pipelines = backend.num_input_pipelines
    facts = dataset_graph.inspect(dataset)
    if facts is None:
        facts = dataset_graph.Sharding((), False, False)
    if already_sharded:
        wrong = [n for n in facts.shard_counts if n != pipelines]
        if wrong:
            raise ValueError(
                f"already_sharded=True but the dataset is split by shard({wrong[0]}, ...) "
                f"while backend {backend.name!r} has {pipelines} input pipeline(s): the "
                "counts would not cover the data set once; shard by the number of workers "
                "(hvd.size(), InputContext.num_input_pipelines) or pass the backend of the "
                "workers that hold the other shards"
            )
        if pipelines > 1 and facts.unseeded_shuffle_before_shard:
            raise ValueError(
                "the dataset is shuffled without a seed before shard(): every worker "
                "shuffles differently, so the shards overlap and class counts are wrong; "
                "pass the same seed= to shuffle() on every worker, or shuffle after shard()"
            )
        return dataset
    if facts.shard_counts:
        raise ValueError(
            f"the dataset is already sharded (shard({facts.shard_counts[0]}, ...)); "
            "label_histogram would count only this worker's part, or shard it again. "
            "Pass already_sharded=True to count each worker's shard as it is and sum over "
            f"workers, or pass the unsharded dataset (it is split here into "
            f"{pipelines} shard(s))"
        )
    if pipelines == 1:
        return dataset
    if facts.unseeded_shuffle:
        raise ValueError(
            "the dataset is shuffled without a seed: label_histogram shards it over "
            f"{pipelines} input pipelines, and each worker's different order would make "
            "the shards overlap (class counts wrong, total right). Pass the same seed= to "
            "shuffle() on every worker, or drop the shuffle (counting needs no order)"
        )
    # The same data on every worker: keep 1/P of it, so nothing is counted twice.
    return dataset.shard(pipelines, backend.input_pipeline_id)


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
        local = _local_dataset(dataset, backend, already_sharded)
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

    @tf.function
    def count_local(local_dataset):
        # Counting runs in the parallel map; the reduce only adds int64 vectors.
        return local_dataset.map(per_batch, num_parallel_calls=tf.data.AUTOTUNE).reduce(
            tf.zeros([width + 1], tf.int64), lambda total, counts: total + counts
        )

    local_counts = count_local(local)
    totals = backend.sum_across_workers(local_counts).numpy().astype(np.int64)
    return LabelHistogram(
        counts=totals[:width],
        num_examples=int(totals[width]),
        label_mode=label_mode,
        num_classes=num_classes,
    )


def _group_counts(histogram: LabelHistogram) -> np.ndarray:
    """[K, G] counts: binary/multi-label K=2 (negatives, positives) x G outputs; else
    K=C classes x G=1."""
    if histogram.label_mode in ("binary", "multi_label"):
        return np.stack([histogram.negatives, histogram.positives]).astype(np.float64)
    return histogram.counts.astype(np.float64)[:, None]


def class_weights(
    histogram: LabelHistogram,
    scheme: str = "balanced",
    beta: float = 0.999,
    normalize: bool = True,
    min_count: int | None = None,
) -> np.ndarray:
    r"""Per-class weights from a histogram, in the form the losses' `class_weight` takes.

    Over the K classes of each output (K = 2, negative and positive, for binary and
    multi-label; K = C otherwise), with n_k examples of class k and N = sum_k n_k:

        balanced          w_k = N / (K n_k)                 (scikit-learn's "balanced")
        inverse           w_k = 1 / n_k
        inverse_sqrt      w_k = 1 / sqrt(n_k)
        effective_number  w_k = (1 - beta) / (1 - beta^n_k) (Cui et al., CVPR 2019)

    With `normalize`, weights are scaled so that their example-weighted mean is 1,
    sum_k n_k w_k = N, which keeps the loss on the training distribution at the scale of
    the unweighted loss ("balanced" already has this property).

    A class with no examples raises ValueError, unless `min_count` is given: then every
    n_k is taken as max(n_k, min_count), a finite rule.

    Returns:
      binary and multi_label: float64 array [2, C] (row 0 negative, row 1 positive
      weights); sparse and categorical: float64 array [C].
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}")
    if scheme == "effective_number" and not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1) for effective_number, got {beta!r}")
    if min_count is not None and (not isinstance(min_count, numbers.Real) or min_count <= 0):
        raise ValueError(f"min_count must be a positive number or None, got {min_count!r}")
    counts = _group_counts(histogram)
    empty = np.argwhere(counts == 0)
    if len(empty) and min_count is None:
        where = ", ".join(_describe_group(histogram, k, g) for k, g in empty)
        raise ValueError(
            f"no examples of {where}: its weight would be infinite; pass min_count= to "
            "use max(count, min_count) instead"
        )
    if min_count is not None:
        counts = np.maximum(counts, float(min_count))
    num_groups = counts.shape[0]
    if scheme == "balanced":
        weights = counts.sum(axis=0, keepdims=True) / (num_groups * counts)
    elif scheme == "inverse":
        weights = 1.0 / counts
    elif scheme == "inverse_sqrt":
        weights = 1.0 / np.sqrt(counts)
    else:
        weights = (
            (1.0 - beta) / (-np.expm1(counts * np.log(beta)))
            if beta > 0
            else (np.ones_like(counts))
        )
    if normalize:
        weights = (
            weights
            * counts.sum(axis=0, keepdims=True)
            / (counts * weights).sum(axis=0, keepdims=True)
        )
    if histogram.label_mode in ("binary", "multi_label"):
        return weights
    return weights[:, 0]


def _describe_group(histogram: LabelHistogram, k: int, g: int) -> str:
    if histogram.label_mode == "binary":
        return "negatives" if k == 0 else "positives"
    if histogram.label_mode == "multi_label":
        return f"{'negatives' if k == 0 else 'positives'} of output {g}"
    return f"class {k}"


def focal_alpha(histogram: LabelHistogram, *, per_output: bool = False, min_count=None):
    r"""The positive-class `alpha` of the binary focal loss from label frequencies.

        alpha = n_neg / (n_neg + n_pos)

    so the rare positives get the larger weight (alpha) and the frequent negatives
    1 - alpha; with 1% positives, alpha = 0.99. For multi_label the counts are pooled
    over outputs, or given per output ([C]) with `per_output=True`. A histogram without
    positives or without negatives raises ValueError unless `min_count` is given (counts
    are then taken as max(n, min_count)).
    """
    if histogram.label_mode not in ("binary", "multi_label"):
        raise ValueError(
            f"focal_alpha is for binary and multi_label histograms, got {histogram.label_mode}"
        )
    positives = histogram.positives.astype(np.float64)
    negatives = histogram.negatives.astype(np.float64)
    if not per_output:
        positives, negatives = positives.sum(keepdims=True), negatives.sum(keepdims=True)
    if min_count is not None:
        positives, negatives = np.maximum(positives, min_count), np.maximum(negatives, min_count)
    elif np.any(positives == 0) or np.any(negatives == 0):
        raise ValueError(
            f"focal_alpha needs positives and negatives; got positives {positives.tolist()} "
            f"and negatives {negatives.tolist()} (pass min_count= for a finite rule)"
        )
    alpha = negatives / (negatives + positives)
    return alpha if per_output else float(alpha[0])
