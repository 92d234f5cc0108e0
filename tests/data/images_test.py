"""Image sources: decoding, labels, sharding, augmentation, and counting without decoding."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import class_weights
from focal_dist.data import images
from focal_dist.data.files import DataError
from focal_dist.distribute import InputInfo
from tests.data import image_fixtures as fx

OPTIONS = images.ImageOptions(image_size=16, channels=3)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return fx.write_image_folder(tmp_path_factory.mktemp("images") / "train")


def _source(kind, path, label_mode="sparse", num_classes=4, options=OPTIONS):
    return images.ImageSource(
        kind, str(path), options, label_mode=label_mode, num_classes=num_classes
    )


def test_png_at_its_own_size_decodes_to_its_pixels_over_255_and_jpeg_close_to_them():
    picture = fx.images(1, seed=1)[0]  # 20 x 24 x 3
    options = images.ImageOptions(image_size=(20, 24), channels=3, augment=False)
    png = images.decode(tf.constant(fx.encode(picture, "png")), options).numpy()
    np.testing.assert_allclose(png, picture / 255.0, atol=1e-6)
    # JPEG is lossy: compare on a smooth picture.
    rows, columns = np.meshgrid(np.linspace(0, 1, 20), np.linspace(0, 1, 24), indexing="ij")
    smooth = (np.stack([rows, columns, rows * columns], -1) * 255).astype(np.uint8)
    jpeg = images.decode(tf.constant(fx.encode(smooth, "jpeg")), options).numpy()
    assert np.abs(jpeg - smooth / 255.0).mean() < 0.02
    grey = images.ImageOptions(image_size=(10, 12), channels=1)
    small = images.decode(tf.constant(fx.encode(picture, "png")), grey).numpy()
    assert small.shape == (10, 12, 1)
    assert 0.0 <= small.min() <= small.max() <= 1.0


def test_folder_classes_are_sorted_names_logged_with_their_indices(folder):
    # Read from absl's logger itself, at INFO, whatever earlier tests in this process did
    # to logging (a fresh-clone run under xdist once captured nothing through caplog).
    lines = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    absl_logger = logging.getLogger("absl")
    level, disabled = absl_logger.level, logging.root.manager.disable
    absl_logger.addHandler(handler)
    absl_logger.setLevel(logging.INFO)
    logging.disable(logging.NOTSET)
    try:
        source = _source("image_folder", folder)
    finally:
        absl_logger.removeHandler(handler)
        absl_logger.setLevel(level)
        logging.disable(disabled)
    assert source.class_names == list(fx.CLASS_NAMES)
    assert any("0=benign (7), 1=cyst (5), 2=malignant (3), 3=normal (1)" in line for line in lines)
    labels = [int(label) for _, label in source.eval_examples(InputInfo(0, 1, 4))]
    assert labels == [0] * 7 + [1] * 5 + [2] * 3 + [3]


@pytest.mark.parametrize("num_pipelines", [1, 2, 3])
def test_folder_shards_cover_every_image_once(folder, num_pipelines):
    source = _source("image_folder", folder)
    seen = []
    for p in range(num_pipelines):
        seen += [
            path.decode()
            for path, _ in source.reader.examples(
                InputInfo(p, num_pipelines, 4)
            ).as_numpy_iterator()
        ]
    assert sorted(seen) == sorted(source.reader.paths)
    assert len(seen) == sum(fx.CLASS_COUNTS)


@pytest.mark.parametrize(
    ("label_mode", "num_classes"), [("sparse", 4), ("binary", 1), ("multi_label", 4)]
)
@pytest.mark.parametrize("num_pipelines", [1, 2, 3])
def test_histogram_of_image_tfrecords_is_exact_and_never_decodes(
    tmp_path, label_mode, num_classes, num_pipelines
):
    rng = np.random.default_rng(5)
    n = 103
    if label_mode == "multi_label":
        hot = rng.random((n, 4)) < [0.05, 0.2, 0.5, 0.9]
        labels = [list(np.flatnonzero(row)) for row in hot]  # some rows have no label
        expected = hot.sum(axis=0)
    else:
        labels = list(
            rng.choice(
                4 if label_mode == "sparse" else 2,
                n,
                p=None if label_mode == "sparse" else [0.9, 0.1],
            )
        )
        expected = np.bincount(labels, minlength=2 if label_mode == "binary" else 4)
    # The image bytes are garbage: any decoding would fail.
    path = fx.write_image_tfrecords(tmp_path, labels, garbage=True)
    source = _source("image_tfrecord", path, label_mode, num_classes)
    totals, examples = 0, 0
    for p in range(num_pipelines):
        histogram = class_weights.label_histogram(
            lambda info, p=p: source.labels(InputInfo(p, num_pipelines, 16), 16),
            num_classes=num_classes,
            label_mode=label_mode,
            label_fn=lambda labels: labels,
        )
        totals, examples = totals + histogram.counts, examples + histogram.num_examples
    assert examples == n
    np.testing.assert_array_equal(totals, expected)


def test_folder_histogram_reads_the_listing_not_the_images(folder, tmp_path):
    source = _source("image_folder", folder)
    histogram = class_weights.label_histogram(
        lambda info: source.labels(info, 16),
        num_classes=4,
        label_mode="sparse",
        label_fn=lambda y: y,
    )
    assert histogram.counts.tolist() == list(fx.CLASS_COUNTS)


def test_multi_label_list_becomes_multi_hot_and_an_empty_list_zeros(tmp_path):
    path = fx.write_image_tfrecords(tmp_path, [[0, 2], [], [3, 1, 3]], num_files=1)
    source = _source("image_tfrecord", path, "multi_label", 4)
    decoded = list(source.eval_examples(InputInfo(0, 1, 4)).as_numpy_iterator())
    assert [label.tolist() for _, label in decoded] == [[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1]]
    assert decoded[0][0].shape == (16, 16, 3)


def test_multi_label_id_outside_the_classes_is_an_error_naming_the_key(tmp_path):
    path = fx.write_image_tfrecords(tmp_path, [[0], [4]], num_files=1)
    source = _source("image_tfrecord", path, "multi_label", 4)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"image/class/label: labels must be in \[0, 4\), got\] \[4\]",
    ):
        list(source.labels(InputInfo(0, 1, 4), 4))


def test_training_batches_are_augmented_reproducibly_and_resume_exactly(folder):
    source = _source("image_folder", folder)
    info = InputInfo(0, 1, 4)

    def batches(skip=0, count=6):
        dataset = source.train_batches(info, shuffle_buffer=16, seed=3, skip_global_batches=skip)
        return [b for b in dataset.take(count).as_numpy_iterator()]

    first, again, resumed = batches(), batches(), batches(skip=2, count=4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    for a, b in zip(first[2:], resumed, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert first[0][0].shape == (4, 16, 16, 3)
    assert 0.0 <= min(b[0].min() for b in first) <= max(b[0].max() for b in first) <= 1.0

    # Epochs of 16 images: an image comes back with another crop (another pixel sum).
    def image_sums(batches_of_an_epoch):
        return np.sort(np.concatenate([b[0] for b in batches_of_an_epoch]).sum(axis=(1, 2, 3)))

    assert not np.allclose(image_sums(first[:4]), image_sums(batches(skip=4, count=4)))


def test_garbage_image_in_a_folder_is_an_error_naming_the_file(tmp_path):
    root = fx.write_image_folder(tmp_path / "train", counts=(1, 1), names=("a", "b"))
    (root / "b" / "broken.png").write_bytes(b"not a png")
    source = _source("image_folder", root, num_classes=2)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"broken.png\] \[: not a JPEG, PNG, GIF or BMP image"
    ):
        list(source.eval_examples(InputInfo(0, 1, 4)))


@pytest.mark.parametrize(
    ("label_mode", "num_classes", "message"),
    [
        (
            "sparse",
            3,
            r"has 4 class folders \['benign', 'cyst', 'malignant', 'normal'\], "
            # The config's name for the task (multiclass), not the label mode (sparse).
            r"but task.name='multiclass' with task.num_classes=3 needs 3",
        ),
        (
            "binary",
            1,
            r"has 4 class folders .* but task.name='binary' with task.num_classes=1 needs 2",
        ),
        (
            "multi_label",
            4,
            r"gives each image one class; multi_label tasks need data.source=image_tfrecord",
        ),
    ],
)
def test_folder_that_does_not_fit_the_task_is_refused(folder, label_mode, num_classes, message):
    with pytest.raises(DataError, match=message):
        _source("image_folder", folder, label_mode, num_classes)


def test_tfrecord_without_the_image_key_names_the_keys_it_has(tmp_path):
    path = fx.write_image_tfrecords(tmp_path, [0, 1], image_key="png_bytes")
    with pytest.raises(
        DataError,
        match=r"has no feature 'image/encoded'; it has \['image/class/label', 'png_bytes'\]",
    ):
        _source("image_tfrecord", path)
    custom = images.ImageSource(
        "image_tfrecord", path, OPTIONS, label_mode="binary", num_classes=1, image_key="png_bytes"
    )
    assert [int(y) for _, y in custom.eval_examples(InputInfo(0, 1, 2))] == [0, 1]


def test_several_labels_for_a_single_label_task_are_refused(tmp_path):
    path = fx.write_image_tfrecords(tmp_path, [[0, 1]], num_files=1)
    with pytest.raises(
        DataError, match=r"'image/class/label' holds 2 labels; a sparse task takes one"
    ):
        _source("image_tfrecord", path)
