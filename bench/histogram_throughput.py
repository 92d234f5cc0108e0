"""Labels/s of `label_histogram` against the I/O limit and against NumPy.

For a TFRecord file and a Parquet file of `--num_labels` examples (sparse labels, 7
classes, 8 float features per example), measured side by side in one process:

  plain read      a tf.data pass over the same reader that only reads the labels
  histogram       focal_dist.class_weights.label_histogram (default backend)
  numpy           the same reader, labels loaded into NumPy, then numpy.bincount

and prints histogram / plain read and histogram / numpy. The files are written once to
`--data_dir` and reused.

    .venv/bin/python bench/histogram_throughput.py [--num_labels=10000000]
    .venv/bin/python bench/histogram_throughput.py --num_labels=100000000 \
        --sources=parquet --repeats=1
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from focal_dist import class_weights as cw
from focal_dist import data
from focal_dist.distribute import InputInfo

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_labels", 10_000_000, "Examples in each file.")
flags.DEFINE_string("data_dir", "/tmp/focal_dist_bench", "Where the files are written.")
flags.DEFINE_integer("batch_size", 8192, "Labels per batch.")
flags.DEFINE_integer("repeats", 3, "Timed passes per method (the best is kept).")
flags.DEFINE_list("sources", ["tfrecord", "parquet"], "File formats to write and read.")

NUM_CLASSES = 7
CLASS_RATES = [0.5, 0.2, 0.15, 0.1, 0.04, 0.009, 0.001]


def _labels() -> np.ndarray:
    return np.random.default_rng(0).choice(NUM_CLASSES, FLAGS.num_labels, p=CLASS_RATES)


def _write_tfrecord(path: str, labels: np.ndarray) -> None:
    # One serialised Example per class (same 8 features): 10M records written by tf.data.
    features = tf.train.Feature(float_list=tf.train.FloatList(value=np.linspace(0, 1, 8)))
    records = tf.constant(
        [
            tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "features": features,
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[c])),
                    }
                )
            ).SerializeToString()
            for c in range(NUM_CLASSES)
        ]
    )
    dataset = tf.data.Dataset.from_tensor_slices(labels).map(lambda y: tf.gather(records, y))
    tf.data.experimental.TFRecordWriter(path).write(dataset)


def _write_parquet(path: str, labels: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    columns = {f"f{i}": rng.random(len(labels), dtype=np.float32) for i in range(8)}
    columns["label"] = labels
    pq.write_table(pa.table(columns), path, row_group_size=1 << 20)


def _files(labels):
    os.makedirs(FLAGS.data_dir, exist_ok=True)
    paths = {}
    for source, writer in (("tfrecord", _write_tfrecord), ("parquet", _write_parquet)):
        if source not in FLAGS.sources:
            continue
        path = os.path.join(FLAGS.data_dir, f"labels-{FLAGS.num_labels}.{source}")
        if not os.path.exists(path):
            logging.info("writing %s", path)
            writer(path + ".tmp", labels)
            os.replace(path + ".tmp", path)
        paths[source] = path
    return paths


def _best_seconds(fn) -> float:
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv):
    del argv
    labels = _labels()
    expected = np.bincount(labels, minlength=NUM_CLASSES)
    paths = _files(labels)
    n = FLAGS.num_labels
    print(
        f"{'source':<10}{'plain read':>14}{'histogram':>14}{'numpy':>14}"
        f"{'hist/plain':>12}{'hist/numpy':>12}   (labels/s)"
    )
    for source, path in paths.items():
        info = InputInfo(pipeline_id=0, num_pipelines=1, per_replica_batch_size=FLAGS.batch_size)

        def reader(info=info, source=source, path=path):
            return data.make_dataset(
                source, path, info, labels_only=True, batch_size=FLAGS.batch_size
            )

        @tf.function
        def plain_read(dataset):
            return dataset.reduce(
                tf.constant(0, tf.int64), lambda total, y: total + tf.size(y, out_type=tf.int64)
            )

        def histogram(reader=reader):
            result = cw.label_histogram(
                reader,
                num_classes=NUM_CLASSES,
                label_mode="sparse",
                label_fn=lambda y: y,
                batch_size=FLAGS.batch_size,
            )
            assert result.counts.tolist() == expected.tolist()

        def numpy_bincount(reader=reader):
            loaded = np.concatenate([batch.numpy() for batch in reader()])
            assert np.bincount(loaded, minlength=NUM_CLASSES).tolist() == expected.tolist()

        assert int(plain_read(reader())) == n
        plain = _best_seconds(lambda reader=reader: plain_read(reader()).numpy())
        hist = _best_seconds(histogram)
        numpy_time = _best_seconds(numpy_bincount)
        print(
            f"{source:<10}{n / plain:>14.3e}{n / hist:>14.3e}{n / numpy_time:>14.3e}"
            f"{plain / hist:>11.2f}x{numpy_time / hist:>11.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
