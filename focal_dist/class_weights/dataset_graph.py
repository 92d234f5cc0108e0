"""What a tf.data pipeline does to sharding, read from its graph.

`label_histogram` counts every example once only if each worker's shard is disjoint
from the others: a dataset the user sharded already must not be sharded again, and a
shuffle without a seed before the shard point gives every worker a different order, so
shards overlap (the total stays right, the class counts do not). Both are visible in
the dataset's serialized graph: `ShardDataset` nodes, and `Shuffle*Dataset` nodes whose
`seed` and `seed2` inputs are both 0 (TensorFlow's "no seed": a random one per process).
`local_shard` takes this worker's part of a dataset, or refuses with what to pass.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
from absl import logging

from focal_dist.distribute import Backend

_SHUFFLE_OPS = (
    "ShuffleDataset",
    "ShuffleDatasetV2",
    "ShuffleDatasetV3",
    "ShuffleAndRepeatDataset",
    "ShuffleAndRepeatDatasetV2",
)


@dataclasses.dataclass(frozen=True)
class Sharding:
    """num_shards of every ShardDataset; whether an unseeded shuffle feeds one (or the end)."""

    shard_counts: tuple[int, ...]
    unseeded_shuffle_before_shard: bool
    unseeded_shuffle: bool


def _graph(dataset: tf.data.Dataset):
    try:
        serialized = dataset._as_serialized_graph(
            external_state_policy=tf.data.experimental.ExternalStatePolicy.WARN
        )
    except Exception as error:  # inspection is best effort; it never blocks counting
        logging.warning("cannot inspect the dataset's graph for sharding (%s)", error)
        return None
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(serialized.numpy())
    # The main graph only: datasets built inside map/interleave functions are per element.
    return {node.name: node for node in graph.node}


def _source(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def _int_constant(nodes, name: str):
    node = nodes.get(_source(name))
    if node is None or node.op != "Const":
        return None
    return int(tf.make_ndarray(node.attr["value"].tensor))


def _ancestors(nodes, name: str) -> set[str]:
    seen, stack = set(), [name]
    while stack:
        current = nodes.get(_source(stack.pop()))
        if current is None or current.name in seen:
            continue
        seen.add(current.name)
        stack.extend(current.input)
    return seen


def _unseeded(nodes, node) -> bool:
    # Inputs: input_dataset, buffer_size, seed, seed2[, seed_generator][, count].
    seeds = [_int_constant(nodes, name) for name in node.input[2:4]]
    return len(seeds) == 2 and seeds == [0, 0]


def inspect(dataset: tf.data.Dataset) -> Sharding | None:
    """The sharding facts of `dataset`, or None when its graph cannot be read."""
    nodes = _graph(dataset)
    if nodes is None:
        return None
    shards = [node for node in nodes.values() if node.op == "ShardDataset"]
    unseeded = {
        name for name, node in nodes.items() if node.op in _SHUFFLE_OPS and _unseeded(nodes, node)
    }
    before_shard = any(unseeded & _ancestors(nodes, shard.input[0]) for shard in shards)
    counts = tuple(
        count
        for count in (_int_constant(nodes, shard.input[1]) for shard in shards)
        if count is not None
    )
    return Sharding(
        shard_counts=counts,
        unseeded_shuffle_before_shard=before_shard,
        unseeded_shuffle=bool(unseeded),
    )


def local_shard(dataset: tf.data.Dataset, backend: Backend, *, already_sharded: bool):
    """This pipeline's part of `dataset`, refusing what would count examples twice or never."""
    pipelines = backend.num_input_pipelines
    facts = inspect(dataset)
    if facts is None:
        facts = Sharding((), False, False)
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
