"""What finding undecodable images costs batch prediction: its input pipeline against the
same decoding without the check.

On image TFRecords (bench/image_files.py: 96 x 96 JPEGs), measured side by side in one
process, taking turns, the median of --repeats passes each (images/s and the process's
CPU time per image):

  ours   the image_tfrecord source's `prediction_batches` (parse, decode, resize, in
         groups that `data/unreadable.py` checks: a record that fails stays with its
         reason);
  plain  the same records mapped through the same `images.decode` and batched, as the
         prediction input was before: one bad image would end the whole pipeline.

Goal: ours >= 0.9x plain (no second read; the check's own work small beside decoding).

    .venv/bin/python bench/prediction_decode.py [--num_images=20000] [--image_size=64]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import tensorflow as tf
from absl import app, flags

sys.path.insert(0, os.path.dirname(__file__))
import image_files
import side_by_side

from focal_dist import data
from focal_dist.configs import images as images_config
from focal_dist.data import images
from focal_dist.data.readers import image_tfrecord
from focal_dist.distribute import InputInfo

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_images", 20_000, "Images written (once) and decoded per pass.")
flags.DEFINE_string("data_dir", "/tmp/focal_dist_bench", "Where the files are written.")
flags.DEFINE_integer("image_size", 64, "Side of the decoded, resized image.")
flags.DEFINE_integer("batch_size", 64, "Images per batch.")
flags.DEFINE_integer("repeats", 8, "Timed passes per method, taking turns (medians are kept).")


def plain_batches(pattern: str, options: images.ImageOptions) -> tf.data.Dataset:
    records = image_tfrecord.prediction_records(pattern, InputInfo(0, 1, 1), "image/encoded")

    def row(file, index, encoded):
        return {"file": file, "row": index, "features": images.decode(encoded, options)}

    rows = records.map(row, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return rows.batch(FLAGS.batch_size).prefetch(tf.data.AUTOTUNE)


@tf.function
def drain(dataset):
    return dataset.reduce(0.0, lambda total, batch: total + batch["features"][0, 0, 0, 0])


def main(argv):
    del argv
    pattern = image_files.write(FLAGS.data_dir, FLAGS.num_images)
    config = images_config.get_config()
    config.data.source, config.data.path = "image_tfrecord", pattern
    config.data.image_size = FLAGS.image_size
    source = data.get_source(config.data, label_mode="binary", num_classes=1)
    ours_ds = source.prediction_batches(pattern, InputInfo(0, 1, 1), FLAGS.batch_size)
    plain_ds = plain_batches(pattern, source.options)
    drain(ours_ds), drain(plain_ds)  # trace, warm the page cache
    print(
        f"{FLAGS.num_images} JPEGs 96x96 -> {FLAGS.image_size}x{FLAGS.image_size}, batch "
        f"{FLAGS.batch_size}; load average {os.getloadavg()[0]:.1f}"
    )
    result = side_by_side.rates(
        {"ours": lambda: drain(ours_ds), "plain": lambda: drain(plain_ds)},
        FLAGS.num_images,
        FLAGS.repeats,
    )
    side_by_side.report("prediction", "images", result, 0.9)


if __name__ == "__main__":
    app.run(main)
