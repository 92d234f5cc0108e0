"""What a tf.data pipeline does to sharding, read from its graph.

`label_histogram` counts every example once only if each worker's shard is disjoint
from the others: a dataset the user sharded already must not be sharded again, and a
shuffle without a seed before the shard point gives every worker a different order, so
shards overlap (the total stays right, the class counts do not). Both are visible in
the dataset's serialized graph: `ShardDataset` nodes, and `Shuffle*Dataset` nodes whose
`seed` and `seed2` inputs are both 0 (TensorFlow's "no seed": a random one per process).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
from absl import logging

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
