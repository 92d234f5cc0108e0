"""Images with masks as a task reads them: folder and TFRecord sources give the same
batches, image and mask share one augmentation, the pixel histogram counts every valid
pixel once over 1-3 pipelines, and a bad mask is refused naming its file."""

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import class_weights as cw
from focal_dist import data
from focal_dist.configs import segmentation
from focal_dist.data import masks
from focal_dist.data.files import DataError
from focal_dist.distribute import InputInfo, get_backend
from focal_dist.tasks.segmentation import SegmentationTask
from tests.data import segmentation_fixtures as fx

COUNT, SIZE = 9, 16


def _config(source, path, **fields):
    config = segmentation.get_config()
    config.task.num_classes = fx.CLASSES
    config.data.source, config.data.path = source, str(path)
    config.data.image_size, config.data.channels = SIZE, 3
    config.data.shuffle_buffer = 0
    for name, value in fields.items():
        config.data[name] = value
    return config


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return fx.write_folder(tmp_path_factory.mktemp("seg") / "train", COUNT)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return fx.write_tfrecords(tmp_path_factory.mktemp("segrec") / "train", COUNT)


def _source(config):
    return data.get_source(config.data, label_mode="sparse", num_classes=fx.CLASSES)


def _eval_batches(source, batch=4):
    info = InputInfo(0, 1, batch, global_batch_size=batch)
    return [(x.numpy(), y.numpy()) for x, y in source.split_batches(info, "eval")]


def test_eval_batches_are_every_pair_resized_bilinear_and_nearest(folder):
    batches = _eval_batches(_source(_config("segmentation_folder", folder)))
    features = np.concatenate([x for x, _ in batches])
    labels = np.concatenate([y for _, y in batches])
    assert features.shape == (COUNT, SIZE, SIZE, 3)
    assert features.dtype == np.float32
    assert labels.shape == (COUNT, SIZE, SIZE)
    assert labels.dtype == np.int64
    for (_, image, mask), x, y in zip(fx.pairs(COUNT), features, labels, strict=True):
        nearest = tf.image.resize(mask[..., None], (SIZE, SIZE), method="nearest")[..., 0]
        np.testing.assert_array_equal(y, nearest.numpy())
        bilinear = tf.image.resize(image, (SIZE, SIZE), method="bilinear").numpy() / 255.0
        np.testing.assert_allclose(x, bilinear, atol=1e-6)


def test_tfrecords_with_model_garden_keys_hold_the_same_pairs(folder, records):
    from_folder = _eval_batches(_source(_config("segmentation_folder", folder)))
    from_records = _eval_batches(_source(_config("segmentation_tfrecord", records)))
    # The records are written round-robin into two files: compare as sets of masks.
    key = sorted(y.tobytes() for _, ys in from_folder for y in ys)
    assert key == sorted(y.tobytes() for _, ys in from_records for y in ys)


def test_training_augments_image_and_mask_with_one_crop_and_flip(folder):
    source = _source(_config("segmentation_folder", folder, crop_min_area=0.3))
    info = InputInfo(0, 1, 3, global_batch_size=3, seed=4)
    agree, flipped = [], 0
    for x, y in source.train_batches(info).take(6):
        x, y = x.numpy(), y.numpy()
        red = x[..., 0] * 255.0
        expected = np.where(y == fx.IGNORE, 250, y * 60)
        agree.append(np.mean(np.abs(red - expected) < 1.0))
        flipped += int(not np.array_equal(y, y[:, :, ::-1]))
    # Bilinear and nearest resizing disagree only on the blocks' edges.
    assert np.mean(agree) > 0.8
    assert flipped > 0


def test_the_pixel_histogram_counts_every_valid_pixel_once_over_pipelines(folder):
    source = _source(_config("segmentation_folder", folder))
    expected = fx.pixel_counts(COUNT)
    for pipelines in (1, 2, 3):
        counts = np.zeros(fx.CLASSES, np.int64)
        for p in range(pipelines):
            for ids in source.label_batches(InputInfo(p, pipelines, 1)):
                counts += np.bincount(ids.numpy(), minlength=fx.CLASSES)
        np.testing.assert_array_equal(counts, expected)
    histogram = cw.label_histogram(
        source.label_batches,
        num_classes=fx.CLASSES,
        label_mode="sparse",
        backend=get_backend("default"),
        label_fn=lambda ids: ids,
    )
    np.testing.assert_array_equal(histogram.counts, expected)
    assert histogram.num_examples == expected.sum()


def _break(folder, kind):
    mask_path = folder / "masks" / "case_004.png"
    if kind == "size":
        tf.io.write_file(str(mask_path), tf.io.encode_png(np.zeros((5, 7, 1), np.uint8)))
    elif kind == "class":
        mask = np.zeros((32, 32, 1), np.uint8)  # case_004 is 32x32
        mask[3, 3] = 7
        tf.io.write_file(str(mask_path), tf.io.encode_png(mask))
    elif kind == "bytes":
        mask_path.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    elif kind == "rgb":
        tf.io.write_file(str(mask_path), tf.io.encode_png(np.zeros((32, 32, 3), np.uint8)))
    return mask_path


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("size", r"differs from its image's"),
        ("class", r"class ids must be in \[0, 3\) or the ignore label 255; found.*7"),
        ("bytes", r"(?i)png"),
        ("rgb", r"one channel of class ids"),
    ],
)
def test_a_bad_mask_stops_the_label_pass_naming_its_file(tmp_path, kind, says):
    folder = fx.write_folder(tmp_path / "train", COUNT)
    bad = _break(folder, kind)
    task = SegmentationTask(_config("segmentation_folder", folder))
    with pytest.raises(DataError, match=says) as raised:
        task.prepare(get_backend("default"))
    assert str(bad) in str(raised.value)


def test_a_bad_eval_mask_is_found_before_training_too(tmp_path, folder):
    eval_folder = fx.write_folder(tmp_path / "eval", 4, seed=3)
    mask = eval_folder / "masks" / "case_002.png"
    tf.io.write_file(str(mask), tf.io.encode_png(np.full((40, 28, 1), 9, np.uint8)))
    task = SegmentationTask(_config("segmentation_folder", folder, eval_path=str(eval_folder)))
    with pytest.raises(DataError, match="case_002.png"):
        task.prepare(get_backend("default"))


def test_an_image_without_its_mask_is_named(tmp_path):
    folder = fx.write_folder(tmp_path / "train", 3)
    (folder / "masks" / "case_001.png").unlink()
    with pytest.raises(DataError, match=r"1 images without a mask .*case_001.png"):
        SegmentationTask(_config("segmentation_folder", folder)).prepare(get_backend("default"))


def test_the_ignore_label_must_not_be_a_class():
    image = data.images.ImageOptions(image_size=8)
    with pytest.raises(
        ValueError, match=r"data.ignore_label must be in .* = \[3, 255\] \(not a class id\); got 2"
    ):
        masks.MaskOptions(image=image, num_classes=3, ignore_label=2)
