"""The known data set of the distributed histogram tests, shared by test and workers."""

import numpy as np

NUM_EXAMPLES = 10_007  # no convenient divisor
NUM_MULTI_LABEL = 5
NUM_SPARSE = 7
LARGE_COUNTS = [2**40 + 3, 3 * 2**31 + 1]  # beyond int32 and float32's exact integers


def labels(mode: str) -> np.ndarray:
    rng = np.random.default_rng({"binary": 1, "multi_label": 2, "sparse": 3}[mode])
    if mode == "binary":
        return (rng.random(NUM_EXAMPLES) < 0.03).astype(np.int64)
    if mode == "multi_label":
        rates = np.array([0.01, 0.05, 0.2, 0.5, 0.9])
        return (rng.random((NUM_EXAMPLES, NUM_MULTI_LABEL)) < rates).astype(np.int64)
    return rng.choice(NUM_SPARSE, NUM_EXAMPLES, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.04, 0.01])


def features() -> np.ndarray:
    return np.random.default_rng(4).normal(size=(NUM_EXAMPLES, 3)).astype(np.float32)


def expected_counts(mode: str) -> list[int]:
    y = labels(mode)
    if mode == "binary":
        return np.bincount(y, minlength=2).tolist()
    if mode == "multi_label":
        return y.sum(axis=0).tolist()
    return np.bincount(y, minlength=NUM_SPARSE).tolist()


# Uneven local batches for compute_global_loss: rank 0 has 6 examples, rank 1 has 4.
LOCAL_LOSSES = [
    np.array([0.5, 1.5, 2.0, 0.25, 3.0, 1.0], np.float32),
    np.array([4.0, 0.1, 0.2, 2.5], np.float32),
]
LOCAL_WEIGHTS = [
    np.array([1.0, 0.5, 2.0, 1.0, 0.0, 1.5], np.float32),
    np.array([0.25, 1.0, 3.0, 1.0], np.float32),
]


def write_files(directory) -> dict[str, str]:
    """Binary labels in TFRecord, multi-label in CSV, sparse in Parquet (two files each)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf

    x = features()
    halves = [slice(0, 6000), slice(6000, NUM_EXAMPLES)]
    paths = {}
    binary = labels("binary")
    for k, part in enumerate(halves):
        with tf.io.TFRecordWriter(str(directory / f"binary-{k}.tfrecord")) as writer:
            for row, label in zip(x[part], binary[part], strict=True):
                feature = {
                    "features": tf.train.Feature(float_list=tf.train.FloatList(value=row)),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                }
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())
    paths["binary"] = str(directory / "binary-*.tfrecord")
    multi = labels("multi_label")
    names = [f"y{c}" for c in range(NUM_MULTI_LABEL)]
    for k, part in enumerate(halves):
        with open(directory / f"multi-{k}.csv", "w") as handle:
            handle.write(",".join(["f0", *names, "f1", "f2"]) + "\n")
            for row, label in zip(x[part], multi[part], strict=True):
                values = [f"{row[0]:.9g}", *map(str, label), f"{row[1]:.9g}", f"{row[2]:.9g}"]
                handle.write(",".join(values) + "\n")
    paths["multi_label"] = str(directory / "multi-*.csv")
    sparse = labels("sparse")
    for k, part in enumerate(halves):
        table = pa.table({"f0": x[part, 0], "label": sparse[part], "f1": x[part, 1]})
        pq.write_table(table, directory / f"sparse-{k}.parquet", row_group_size=2500)
    paths["sparse"] = str(directory / "sparse-*.parquet")
    return paths
