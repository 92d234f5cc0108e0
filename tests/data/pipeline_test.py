"""data/pipeline.py: the exact global-batch split, checked against NumPy bookkeeping.

Reference: a global step's examples are the rows a one-device run takes at that step;
under N pipelines x R replicas the union of the per-replica slices, in order, must be
exactly those rows, a short last batch and resumption included.
"""

import numpy as np
import pytest
import tensorflow as tf

from focal_dist.data import pipeline
from focal_dist.distribute import InputInfo

N_EXAMPLES = 23
GLOBAL = 8  # 3 global batches per epoch: 8, 8, 7


def _whole(n=N_EXAMPLES):
    ids = np.arange(n, dtype=np.int64)
    return tf.data.Dataset.from_tensors((ids, ids * 10)).cache()


def _split(num_pipelines, replicas, *, shuffle, skip=0, repeat=True, n=N_EXAMPLES):
    """Per global step, the ids every replica of every pipeline took, in replica order."""
    per_replica = GLOBAL // (num_pipelines * replicas)
    streams = []
    for p in range(num_pipelines):
        info = InputInfo(p, num_pipelines, per_replica, replicas, GLOBAL)
        dataset = pipeline.split_in_memory(
            _whole(n),
            n,
            info,
            global_batch_size=GLOBAL,
            shuffle=shuffle,
            seed=7,
            repeat=repeat,
            skip_global_batches=skip,
        )
        elements = list(dataset.take(12 * replicas).as_numpy_iterator())
        for ids, tens in elements:
            np.testing.assert_array_equal(tens, ids * 10)  # rows stay together
            assert len(ids) <= per_replica
        streams.append([ids for ids, _ in elements])
    steps = len(streams[0]) // replicas
    return [
        np.concatenate(
            [streams[p][s * replicas + r] for p in range(num_pipelines) for r in range(replicas)]
        )
        for s in range(steps)
    ]


@pytest.mark.parametrize(("num_pipelines", "replicas"), [(1, 1), (2, 1), (1, 4), (2, 2)])
def test_every_split_takes_the_one_device_batches(num_pipelines, replicas):
    reference = _split(1, 1, shuffle=True)
    assert [len(b) for b in reference[:3]] == [8, 8, 7]
    ours = _split(num_pipelines, replicas, shuffle=True)
    assert len(ours) == len(reference)
    for step, (got, expected) in enumerate(zip(ours, reference, strict=True)):
        np.testing.assert_array_equal(got, expected, err_msg=f"global step {step}")


def test_each_epoch_is_a_permutation_and_epochs_differ():
    steps = _split(1, 1, shuffle=True)
    epochs = [np.concatenate(steps[e * 3 : e * 3 + 3]) for e in range(4)]
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(N_EXAMPLES))
    assert len({tuple(e) for e in epochs}) == 4
    unshuffled = _split(1, 1, shuffle=False)
    np.testing.assert_array_equal(np.concatenate(unshuffled[:3]), np.arange(N_EXAMPLES))


@pytest.mark.parametrize("skip", [1, 3, 5])
def test_resuming_skips_exactly_the_global_batches_taken(skip):
    reference = _split(1, 1, shuffle=True)
    resumed = _split(2, 2, shuffle=True, skip=skip)
    for got, expected in zip(resumed, reference[skip:], strict=False):
        np.testing.assert_array_equal(got, expected)


def test_one_pass_visits_every_example_once():
    steps = _split(2, 1, shuffle=False, repeat=False)
    assert len(steps) == 3
    np.testing.assert_array_equal(np.concatenate(steps), np.arange(N_EXAMPLES))


@pytest.mark.parametrize("n", [5, 16])
def test_a_set_smaller_than_one_global_batch_or_a_multiple_of_it(n):
    """One short batch only (5 < 8), or no short batch (16 = 2 x 8)."""
    expected = [np.arange(start, min(start + GLOBAL, n)) for start in range(0, n, GLOBAL)]
    for pipelines, replicas in [(1, 1), (2, 2), (1, 4)]:
        steps = _split(pipelines, replicas, shuffle=False, repeat=False, n=n)
        assert len(steps) == len(expected)
        for got, want in zip(steps, expected, strict=True):
            np.testing.assert_array_equal(got, want)
        shuffled = _split(pipelines, replicas, shuffle=True, n=n)
        reference = _split(1, 1, shuffle=True, n=n)
        for got, want in zip(shuffled, reference, strict=True):
            np.testing.assert_array_equal(got, want)
