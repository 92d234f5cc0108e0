"""The image input pipeline and the image label histogram against plain tf.data.

On image TFRecords (bench/image_files.py: 96 x 96 JPEGs, binary labels), measured side
by side in one process, taking turns, the median of --repeats passes each (wall
clock and the process's CPU time per item):

  pipeline   ours: the task's training batches (`configs/images.py` with
             data.source=image_tfrecord: shard, shuffle the encoded images, decode, random
             crop, resize to --image_size, flip, batch, labels) against a plain tf.data
             decode of the same files doing the same work (parse, decode_jpeg,
             sample_distorted_bounding_box, resize, flip, batch). Images/s.
  histogram  ours: the class-weight label pass (`label_histogram` over the task's label
             dataset, which parses the label key only) against a plain read that parses
             the label feature of every record and counts them. Labels/s.

Goals: pipeline >= 0.9x plain, histogram >= 0.8x plain.

    .venv/bin/python bench/image_pipeline.py [--num_images=20000] [--image_size=64] \
        [--histogram_images=200000]
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

from focal_dist import class_weights
from focal_dist.configs import images as images_config
from focal_dist.distribute import InputInfo
from focal_dist.tasks.classification import ClassificationTask

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_images", 20_000, "Images written (once) and decoded per pass.")
flags.DEFINE_integer(
    "histogram_images",
    200_000,
    "Images of the histogram's files: enough that the pass, not its one-off set-up "
    "(tracing the counting function, ~0.3 s), is what is timed.",
)
flags.DEFINE_string("data_dir", "/tmp/focal_dist_bench", "Where the files are written.")
flags.DEFINE_integer("image_size", 64, "Side of the decoded, resized image.")
flags.DEFINE_integer("batch_size", 64, "Images per batch.")
flags.DEFINE_integer("repeats", 8, "Timed passes per method, taking turns (medians are kept).")


def task_for(pattern: str) -> ClassificationTask:
    config = images_config.get_config()
    config.task.name = "binary"
    config.task.num_classes = 1
    config.data.source = "image_tfrecord"
    config.data.path = pattern
    config.data.image_size = FLAGS.image_size
    return ClassificationTask(config)


def plain_pipeline(pattern: str) -> tf.data.Dataset:
    """What a tf.data user writes by hand for the same work."""
    size = FLAGS.image_size
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    }

    def load(record):
        parsed = tf.io.parse_single_example(record, spec)
        image = tf.io.decode_jpeg(parsed["image/encoded"], channels=3)
        begin, crop, _ = tf.image.sample_distorted_bounding_box(
            tf.shape(image),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            min_object_covered=0.0,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.64, 1.0),
            max_attempts=10,
        )
        image = tf.image.resize(tf.slice(image, begin, crop), (size, size), antialias=True)
        image = tf.image.random_flip_left_right(image / 255.0)
        label = tf.reshape(tf.cast(parsed["image/class/label"], tf.float32), [1])
        return image, label

    files = tf.io.gfile.glob(pattern)
    return (
        tf.data.TFRecordDataset(files, num_parallel_reads=4)
        .shuffle(2048, seed=0)
        .repeat()
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(FLAGS.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def plain_labels(pattern: str) -> tf.data.Dataset:
    spec = {"image/class/label": tf.io.FixedLenFeature([], tf.int64)}
    return (
        tf.data.TFRecordDataset(tf.io.gfile.glob(pattern))
        .batch(4096)
        .map(lambda r: tf.io.parse_example(r, spec)["image/class/label"], tf.data.AUTOTUNE)
    )


@tf.function
def drain(dataset, batches):
    """Pulls `batches` batches through the pipeline inside one graph; returns a checksum."""
    return dataset.take(batches).reduce(0.0, lambda total, batch: total + batch[0][0, 0, 0, 0])


@tf.function
def count(dataset):
    return dataset.reduce(tf.constant(0, tf.int64), lambda n, y: n + tf.reduce_sum(y))


def main(argv):
    del argv
    pattern = image_files.write(FLAGS.data_dir, FLAGS.num_images)
    task = task_for(pattern)
    info = InputInfo(0, 1, FLAGS.batch_size, 1, FLAGS.batch_size)
    batches = FLAGS.num_images // FLAGS.batch_size
    ours_ds, plain_ds = task.train_dataset(info), plain_pipeline(pattern)
    x, y = next(iter(ours_ds))
    assert x.shape == (FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, 3), x.shape
    drain(ours_ds, 20), drain(plain_ds, 20)  # trace, fill buffers
    print(
        f"{FLAGS.num_images} JPEGs 96x96 -> {FLAGS.image_size}x{FLAGS.image_size}, batch "
        f"{FLAGS.batch_size}; load average {os.getloadavg()[0]:.1f}"
    )
    result = side_by_side.rates(
        {"ours": lambda: drain(ours_ds, batches), "plain": lambda: drain(plain_ds, batches)},
        batches * FLAGS.batch_size,
        FLAGS.repeats,
    )
    side_by_side.report("pipeline  ", "images", result, 0.9)

    pattern = image_files.write(FLAGS.data_dir, FLAGS.histogram_images)
    task = task_for(pattern)
    expected = image_files.labels(FLAGS.histogram_images)

    def histogram():
        result = class_weights.label_histogram(
            task.histogram_dataset, num_classes=1, label_mode="binary", label_fn=lambda y: y
        )
        assert result.positives.tolist() == [expected.sum()], result.counts
        assert result.num_examples == FLAGS.histogram_images

    assert int(count(plain_labels(pattern))) == expected.sum()
    result = side_by_side.rates(
        {"ours": histogram, "plain": lambda: count(plain_labels(pattern)).numpy()},
        FLAGS.histogram_images,
        FLAGS.repeats,
    )
    side_by_side.report("histogram ", "labels", result, 0.8)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    app.run(main)
