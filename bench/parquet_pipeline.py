"""The Parquet pipeline and the Parquet label pass against a plain TFRecord read of the
same rows.

`--num_rows` rows (8 float32 features, an int64 label of 7 classes) are written once to
`--data_dir` twice, with the same values: as Parquet (pyarrow's defaults: snappy, row
groups of `--row_group_rows`) and as TFRecord (`tf.train.Example`: float list
"features" of 8, int64 "label"). Measured side by side in one process, taking turns,
the median of --repeats passes each (wall clock and the process's CPU time per row):

  pipeline     ours: the Parquet reader as training reads it (`data.make_dataset`:
               features and labels of every row, chunks of 65536 rows decoded by
               pyarrow, the value checks, batches of --batch_size) against a plain read
               of the TFRecord file (TFRecordDataset, batch, parse_example of features and
               label). Rows/s.
  label pass   ours: `label_histogram` over the labels-only Parquet reader (the label
               column alone, as `python -m focal_dist.histogram` reads it) against a
               plain read of the TFRecord file that parses the label of every record and
               counts them. Labels/s.
  checked      ours: training's label pass (labels counted, every feature read and
  label pass   checked, before the first step) against the plain TFRecord read of
               features and labels. Labels/s.
  training     ours: the training input of `configs/parquet.py` (`Source.train_batches`:
  input        the reader, then unbatch, shuffle 16384 rows, batches of 256) against the
               plain TFRecord training input (TFRecordDataset, shuffle 16384 records,
               batch 256, parse_example). Rows/s, one pass over the rows.

Goals: pipeline >= 0.9x plain, label pass >= 0.8x plain.

    .venv/bin/python bench/parquet_pipeline.py [--num_rows=4000000] [--repeats=5]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import side_by_side
import tensorflow as tf
from absl import app, flags, logging

from focal_dist import class_weights, data
from focal_dist.configs import parquet as parquet_config
from focal_dist.distribute import InputInfo

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_rows", 4_000_000, "Rows in each file.")
flags.DEFINE_integer("row_group_rows", 1 << 20, "Rows per Parquet row group (pyarrow's default).")
flags.DEFINE_string("data_dir", "/tmp/focal_dist_bench", "Where the files are written.")
flags.DEFINE_integer("batch_size", 4096, "Rows per batch (what the table sources read).")
flags.DEFINE_integer("repeats", 5, "Timed passes per method, taking turns (medians are kept).")

NUM_FEATURES, NUM_CLASSES = 8, 7
CLASS_RATES = [0.5, 0.2, 0.15, 0.1, 0.04, 0.009, 0.001]
SPEC = {
    "features": tf.io.FixedLenFeature([NUM_FEATURES], tf.float32),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def _rows():
    rng = np.random.default_rng(0)
    features = rng.random((FLAGS.num_rows, NUM_FEATURES), dtype=np.float32)
    return features, rng.choice(NUM_CLASSES, FLAGS.num_rows, p=CLASS_RATES)


def _serialized(features, labels) -> np.ndarray:
    """[N, bytes] uint8: each row's tf.train.Example, written into one template.

    Every row's Example has the same layout (8 packed floats, a one-byte label varint),
    so its bytes are the template's with the floats and the label put in place: 10^6
    rows in seconds, where tf.train.Example per row takes minutes.
    """
    marker = np.arange(1, NUM_FEATURES + 1, dtype=np.float32)
    template = tf.train.Example(
        features=tf.train.Features(
            feature={
                "features": tf.train.Feature(float_list=tf.train.FloatList(value=marker)),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[NUM_CLASSES])),
            }
        )
    ).SerializeToString()
    at = template.index(marker.tobytes())
    label_at = template.rindex(bytes([0x0A, 1, NUM_CLASSES]))  # packed Int64List: [7]
    out = np.tile(np.frombuffer(template, np.uint8), (len(labels), 1))
    out[:, at : at + 4 * NUM_FEATURES] = features.view(np.uint8)
    out[:, label_at + 2] = labels
    return out


def _write_files() -> tuple[str, str]:
    stem = os.path.join(FLAGS.data_dir, f"rows-{FLAGS.num_rows}-{FLAGS.row_group_rows}")
    parquet, tfrecord = stem + ".parquet", stem + ".tfrecord"
    if os.path.exists(parquet) and os.path.exists(tfrecord):
        return parquet, tfrecord
    os.makedirs(FLAGS.data_dir, exist_ok=True)
    features, labels = _rows()
    logging.info("writing %s and %s", parquet, tfrecord)
    columns = {f"f{k}": features[:, k] for k in range(NUM_FEATURES)}
    pq.write_table(pa.table({**columns, "label": labels}), parquet + ".tmp", FLAGS.row_group_rows)
    with tf.io.TFRecordWriter(tfrecord + ".tmp") as writer:
        for record in _serialized(features, labels):
            writer.write(record.tobytes())
    first = next(iter(tf.data.TFRecordDataset(tfrecord + ".tmp").batch(100)))
    parsed = tf.io.parse_example(first, SPEC)
    np.testing.assert_array_equal(parsed["features"], features[:100])
    np.testing.assert_array_equal(parsed["label"], labels[:100])
    os.replace(parquet + ".tmp", parquet)
    os.replace(tfrecord + ".tmp", tfrecord)
    return parquet, tfrecord


def plain_tfrecord(path: str, keys=("features", "label"), shuffle=0, batch_size=0):
    spec = {key: SPEC[key] for key in keys}
    records = tf.data.TFRecordDataset(path)
    if shuffle:
        records = records.shuffle(shuffle, seed=0).repeat()
    return records.batch(batch_size or FLAGS.batch_size).map(
        lambda r: tuple(tf.io.parse_example(r, spec)[key] for key in keys), tf.data.AUTOTUNE
    )


@tf.function
def drain(dataset, batches=-1):
    """`batches` batches (-1: all) through the pipeline in one graph; the labels' sum."""
    return dataset.take(batches).reduce(
        tf.constant(0, tf.int64), lambda total, batch: total + tf.reduce_sum(batch[-1])
    )


def training_inputs(parquet: str, tfrecord: str) -> dict:
    """{"ours": the Parquet source's training input, "plain": TFRecord's}, one pass each."""
    config = parquet_config.get_config()
    config.data.path = parquet
    source = data.get_source(config.data, label_mode="sparse", num_classes=NUM_CLASSES)
    batch_size, shuffle = config.train.global_batch_size, config.data.shuffle_buffer
    info = InputInfo(0, 1, batch_size, 1, batch_size, seed=0)
    ours = source.train_batches(info)
    plain = plain_tfrecord(tfrecord, shuffle=shuffle, batch_size=batch_size)
    batches = FLAGS.num_rows // batch_size
    return {
        "ours": lambda: drain(ours, batches).numpy(),
        "plain": lambda: drain(plain, batches).numpy(),
    }


def main(argv):
    del argv
    parquet, tfrecord = _write_files()
    _, labels = _rows()
    expected = np.bincount(labels, minlength=NUM_CLASSES)
    info = InputInfo(0, 1, FLAGS.batch_size)

    def reader(**options):
        return data.make_dataset("parquet", parquet, info, batch_size=FLAGS.batch_size, **options)

    def histogram(**options):
        result = class_weights.label_histogram(
            lambda _: reader(labels_only=True, **options),
            num_classes=NUM_CLASSES,
            label_mode="sparse",
            label_fn=lambda y: y,
            batch_size=FLAGS.batch_size,
        )
        assert result.counts.tolist() == expected.tolist(), result.counts

    label_sum = int(labels.sum())
    assert int(drain(reader())) == int(drain(plain_tfrecord(tfrecord))) == label_sum
    print(
        f"{FLAGS.num_rows:,} rows x {NUM_FEATURES} float32 features + int64 label; Parquet "
        f"row groups of {FLAGS.row_group_rows:,} rows; batch {FLAGS.batch_size}; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    plain = {"plain": lambda: drain(plain_tfrecord(tfrecord)).numpy()}
    result = side_by_side.rates(
        {"ours": lambda: drain(reader()).numpy(), **plain}, FLAGS.num_rows, FLAGS.repeats
    )
    side_by_side.report("pipeline          ", "rows", result, 0.9)
    label_only = {"plain": lambda: drain(plain_tfrecord(tfrecord, keys=("label",))).numpy()}
    result = side_by_side.rates({"ours": histogram, **label_only}, FLAGS.num_rows, FLAGS.repeats)
    side_by_side.report("label pass        ", "labels", result, 0.8)
    result = side_by_side.rates(
        {"ours": lambda: histogram(check_features=True), **plain}, FLAGS.num_rows, FLAGS.repeats
    )
    side_by_side.report("checked label pass", "labels", result, 0.8)
    result = side_by_side.rates(training_inputs(parquet, tfrecord), FLAGS.num_rows, FLAGS.repeats)
    side_by_side.report("training input    ", "rows", result, 0.9)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    app.run(main)
