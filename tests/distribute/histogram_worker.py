"""One worker of the distributed histogram tests (run by horovodrun or launch/multiworker).

Counts the known labels through the product API under the given backend (and the
user's own strategy object or backend name), asserts that an already-sharded or
unseeded-shuffled pipeline is refused with the fix and counted right once declared or
seeded, checks the cross-worker reduction of large int64 counts, compute_global_loss
with uneven local batches and the backend's agreement helpers, and writes what it saw
to <out>/rank<r>.json.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import tensorflow as tf

from focal_dist import class_weights as cw
from focal_dist import data
from focal_dist import losses as fl
from focal_dist.distribute import get_backend
from tests.distribute import fixtures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--distribution", required=True)
    parser.add_argument("--paths", required=True, help="JSON {mode: path}")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    backend = get_backend(args.distribution)
    paths = json.loads(args.paths)
    result = {"rank": backend.worker_index, "num_workers": backend.num_workers}

    # 1. Files read per input pipeline (a dataset function, as training does).
    for mode, num_classes, column in [
        ("binary", 1, "label"),
        ("multi_label", fixtures.NUM_MULTI_LABEL, [f"y{c}" for c in range(5)]),
        ("sparse", fixtures.NUM_SPARSE, "label"),
    ]:
        source = data.source_from_path(paths[mode])

        def pipeline(info, source=source, mode=mode, column=column):
            return data.make_dataset(
                source,
                paths[mode],
                info,
                label_column=column,
                labels_only=True,
                batch_size=997,
            )

        histogram = cw.label_histogram(
            pipeline,
            num_classes=num_classes,
            label_mode=mode,
            backend=backend,
            label_fn=lambda labels: labels,
        )
        result[mode] = {"counts": histogram.counts.tolist(), "n": histogram.num_examples}

    # 2. The same unsharded in-memory Dataset on every worker: counted once, not N times.
    sparse = fixtures.labels("sparse")
    dataset = tf.data.Dataset.from_tensor_slices((fixtures.features(), sparse)).batch(64)
    histogram = cw.label_histogram(
        dataset, num_classes=fixtures.NUM_SPARSE, label_mode="sparse", backend=backend
    )
    result["unsharded_dataset"] = {"counts": histogram.counts.tolist(), "n": histogram.num_examples}

    # 2b. The user's own pipeline, as Horovod users shard it: declared, counted once;
    # undeclared, or shuffled without a seed before the shard, refused with the fix.
    expected = fixtures.expected_counts("sparse")
    pairs = tf.data.Dataset.from_tensor_slices((fixtures.features(), sparse))
    workers, rank = backend.num_workers, backend.worker_index
    own_shard = pairs.shard(workers, rank).batch(64)
    histogram = cw.label_histogram(
        own_shard,
        num_classes=fixtures.NUM_SPARSE,
        label_mode="sparse",
        backend=backend,
        already_sharded=True,
    )
    assert histogram.counts.tolist() == expected, histogram.counts
    refusals = {
        "undeclared_shard": dict(dataset=own_shard),
        "unseeded_shuffle_then_shard": dict(
            dataset=pairs.shuffle(10_007).shard(workers, rank), already_sharded=True
        ),
        "unseeded_shuffle": dict(dataset=pairs.shuffle(10_007)),
    }
    result["refused"] = {}
    for case, kwargs in refusals.items():
        try:
            cw.label_histogram(
                num_classes=fixtures.NUM_SPARSE, label_mode="sparse", backend=backend, **kwargs
            )
            result["refused"][case] = ""
        except ValueError as error:
            result["refused"][case] = str(error)
    assert "already_sharded=True" in result["refused"]["undeclared_shard"], result["refused"]
    for case in ("unseeded_shuffle_then_shard", "unseeded_shuffle"):
        assert "seed=" in result["refused"][case], result["refused"]
    seeded = pairs.shuffle(10_007, seed=7).batch(64)
    histogram = cw.label_histogram(
        seeded, num_classes=fixtures.NUM_SPARSE, label_mode="sparse", backend=backend
    )
    assert histogram.counts.tolist() == expected, histogram.counts
    # A user's own tf.distribute strategy object (or the name "horovod").
    users_backend = getattr(backend, "strategy", None) or args.distribution
    histogram = cw.label_histogram(
        pairs.batch(100),
        num_classes=fixtures.NUM_SPARSE,
        label_mode="sparse",
        backend=users_backend,
    )
    assert histogram.counts.tolist() == expected, (users_backend, histogram.counts)

    # 3. int64 counts past 2^31 through the cross-worker reduction.
    large = backend.sum_across_workers(tf.constant(fixtures.LARGE_COUNTS, tf.int64))
    result["large_counts"] = [int(v) for v in large.numpy()]

    # 4. compute_global_loss with uneven local batches (6 on rank 0, 4 on rank 1).
    rank = backend.worker_index
    losses = tf.constant(fixtures.LOCAL_LOSSES[rank])
    weights = tf.constant(fixtures.LOCAL_WEIGHTS[rank])

    @tf.function
    def step():
        return backend.run(lambda: fl.compute_global_loss(losses, weights, backend=backend))

    result["global_loss"] = float(backend.reduce_sum(step()).numpy())

    # 5. Agreement: the chief's value everywhere; one worker's refusal raised on all.
    result["chief_value"] = backend.chief_value(1000.0 + rank)
    result["any_worker"] = [backend.any_worker(rank == 1), backend.any_worker(False)]
    backend.raise_together(None, RuntimeError("not raised"))
    try:
        backend.raise_together(
            ValueError(f"rank {rank}'s own") if rank == 1 else None, RuntimeError("elsewhere")
        )
        result["raised"] = ""
    except (ValueError, RuntimeError) as error:
        result["raised"] = str(error)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main()
