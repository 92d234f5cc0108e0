"""Images that cannot be decoded are found by the pass before training, as a user's folder
holds them: a PNG cut short, text named `.png`, an empty `.jpg` and a JPEG cut short
(its header intact, so a header read passes it). Every pipeline decodes its own shard;
summed over 1-3 pipelines the bad files are exactly the ones damaged here. "error"
names each with the decoder's reason; "skip" leaves them out of every pipeline's
shard alike, and the pixel histogram counts the remaining masks as NumPy does."""

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import data
from focal_dist.configs import images as images_config
from focal_dist.configs import segmentation as segmentation_config
from focal_dist.data import bad_files, masks
from focal_dist.data.files import DataError
from focal_dist.distribute import InputInfo, get_backend
from focal_dist.tasks.classification import ClassificationTask
from focal_dist.tasks.segmentation import SegmentationTask
from focal_dist.training.config_check import ConfigError, validate_config
from tests.data import image_fixtures as ifx
from tests.data import segmentation_fixtures as sfx

# What each damaged file's reason must say (the decoder's words).
REASONS = {
    "benign/zz_cut.png": "Invalid PNG data",
    "cyst/zz_text.png": "not a JPEG, PNG, GIF or BMP image",
    "normal/zz_empty.jpg": "the file is empty (0 bytes)",
    "malignant/zz_cut.jpg": "jpeg::Uncompress failed. Invalid JPEG data",
}


def damage_image_folder(folder):
    """Writes REASONS' four bad files among the good ones; returns their paths."""
    png = (folder / "benign" / "000.png").read_bytes()
    jpeg = (folder / "benign" / "001.jpg").read_bytes()
    (folder / "benign" / "zz_cut.png").write_bytes(png[: len(png) // 2])
    (folder / "cyst" / "zz_text.png").write_text("a note, not an image\n")
    (folder / "normal" / "zz_empty.jpg").write_bytes(b"")
    (folder / "malignant" / "zz_cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    return {str(folder / name) for name in REASONS}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = ifx.write_image_folder(tmp_path_factory.mktemp("bad_images") / "train")
    return folder, damage_image_folder(folder)


def _image_config(path, bad_files_mode="error"):
    config = images_config.get_config()
    config.data.path, config.data.image_size = str(path), 8
    config.data.bad_files = bad_files_mode
    return config


def _image_source(path):
    return data.get_source(_image_config(path).data, label_mode="sparse", num_classes=4)


def test_a_jpeg_cut_short_passes_a_header_read_but_not_the_decoder(folder):
    path = next(p for p in folder[1] if p.endswith("zz_cut.jpg"))
    encoded = tf.io.read_file(path)
    assert masks.image_size(encoded).numpy().tolist() == [24, 20]
    with pytest.raises(tf.errors.InvalidArgumentError):
        data.images.decoded_size(encoded, 3)


@pytest.mark.parametrize("num_pipelines", [1, 2, 3])
def test_the_pipelines_together_find_exactly_the_damaged_files(folder, num_pipelines):
    path, damaged = folder
    source = _image_source(path)
    shards = [source.check_files(InputInfo(p, num_pipelines, 8)) for p in range(num_pipelines)]
    assert all(s.label_counts is None for s in shards)  # labels: from the listing
    counts = sum(s.undecodable.counts for s in shards)
    assert counts.max() == 1  # every image decoded by one pipeline
    files = shards[0].undecodable.files
    assert {f for f, n in zip(files, counts[:, -1], strict=True) if n} == damaged
    assert len(files) == sum(ifx.CLASS_COUNTS) + len(damaged)


def test_error_names_every_file_with_its_reason_on_one_line(folder):
    path, damaged = folder
    task = ClassificationTask(_image_config(path))
    with pytest.raises(DataError) as raised:
        task.prepare(get_backend("default"))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("4 image file(s) cannot be decoded: ")
    for name, reason in REASONS.items():
        assert f"{path / name}: {reason}" in message
    assert message.endswith("or set --config.data.bad_files=skip to train without them")


def test_skip_leaves_them_out_of_every_pipelines_shard_and_the_label_counts(folder):
    path, damaged = folder
    task = ClassificationTask(_image_config(path, "skip"))
    task.prepare(get_backend("default"))
    assert task.counts.histogram.counts.tolist() == list(ifx.CLASS_COUNTS)
    summary = task.summary_sections()["data"]["skipped_files"]
    assert summary["files"] == len(damaged)
    assert sorted(summary["first"]) == sorted(damaged)
    for name, reason in REASONS.items():
        assert summary["first"][str(path / name)].startswith(reason)
    report = task.report()[-1]
    assert report.name == "data/skipped_files"
    assert sorted(row[0] for row in report.rows) == sorted(damaged)
    seen = []
    for p in range(3):
        for record in task.source.splits["train"].reader.records(InputInfo(p, 3, 4)):
            seen.append(record[0].numpy().decode())
    assert sorted(seen) == sorted(
        str(f) for f in path.rglob("*") if f.is_file() and str(f) not in damaged
    )


def test_more_bad_files_than_are_named_are_counted(tmp_path):
    folder = ifx.write_image_folder(tmp_path / "train")
    for k in range(bad_files.NAMED + 2):
        (folder / "cyst" / f"zz_{k:02d}.png").write_text("text")
    task = ClassificationTask(_image_config(folder))
    with pytest.raises(DataError, match=r"^12 image file\(s\) .*; and 2 more; fix or remove"):
        task.prepare(get_backend("default"))


def _segmentation_config(path, bad_files_mode="error"):
    config = segmentation_config.get_config()
    config.task.num_classes = sfx.CLASSES
    config.data.source, config.data.path = "segmentation_folder", str(path)
    config.data.image_size, config.data.channels = 16, 3
    config.data.bad_files = bad_files_mode
    return config


@pytest.fixture(scope="module")
def pairs_folder(tmp_path_factory):
    folder = sfx.write_folder(tmp_path_factory.mktemp("bad_pairs") / "train", 9)
    image = folder / "images" / "case_004.png"
    image.write_bytes(image.read_bytes()[:300])
    (folder / "images" / "case_007.png").write_bytes(b"")
    return folder, {str(image), str(folder / "images" / "case_007.png")}


@pytest.mark.parametrize("num_pipelines", [1, 2])
def test_the_pixel_histogram_of_the_pass_counts_the_decodable_pairs_as_numpy_does(
    pairs_folder, num_pipelines
):
    folder, damaged = pairs_folder
    source = data.get_source(
        _segmentation_config(folder).data, label_mode="sparse", num_classes=sfx.CLASSES
    )
    shards = [source.check_files(InputInfo(p, num_pipelines, 1)) for p in range(num_pipelines)]
    counts = sum(s.undecodable.counts for s in shards)
    bad = {f for f, n in zip(shards[0].undecodable.files, counts[:, -1], strict=True) if n}
    assert bad == damaged
    expected = np.zeros(sfx.CLASSES, np.int64)
    for stem, _, mask in sfx.pairs(9):
        if str(folder / "images" / f"{stem}.png") not in damaged:
            expected += np.bincount(mask[mask != sfx.IGNORE], minlength=sfx.CLASSES)
    pixels = sum(s.label_counts for s in shards)
    assert pixels.tolist() == [*expected.tolist(), int(expected.sum())]


def test_segmentation_skip_trains_on_the_rest_and_error_names_them(pairs_folder):
    folder, damaged = pairs_folder
    with pytest.raises(DataError, match=r"2 image file\(s\) cannot be decoded: .*case_004.png"):
        SegmentationTask(_segmentation_config(folder)).prepare(get_backend("default"))
    task = SegmentationTask(_segmentation_config(folder, "skip"))
    task.prepare(get_backend("default"))
    assert task.summary_sections()["data"]["skipped_files"]["files"] == 2
    reader = task.source.readers["train"]
    assert len(reader.images) == len(reader.masks) == 7
    assert not damaged & set(reader.images)


def test_bad_files_is_checked_with_the_config():
    config = _image_config("/nonexistent")
    config.data.bad_files = "ignore"
    with pytest.raises(ConfigError, match=r"data.bad_files must be one of error, skip; got"):
        validate_config(config, num_replicas=1)
    config = _image_config("/nonexistent", "skip")
    config.data.source = "csv"
    with pytest.raises(ConfigError, match=r"data.bad_files must be 'error' for data.source='csv'"):
        validate_config(config, num_replicas=1)


def test_a_tfrecord_image_that_cannot_be_decoded_stops_the_pass_naming_its_record(tmp_path):
    path = tmp_path / "pairs.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, (_, image, mask) in enumerate(sfx.pairs(4)):
            encoded = tf.io.encode_png(image).numpy()
            feature = {
                "image/encoded": encoded[: len(encoded) // 2] if i == 2 else encoded,
                "image/segmentation/class/encoded": tf.io.encode_png(mask[..., None]).numpy(),
            }
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
                        for k, v in feature.items()
                    }
                )
            )
            writer.write(example.SerializeToString())
    config = _segmentation_config(path)
    config.data.source = "segmentation_tfrecord"
    with pytest.raises(
        DataError,
        match=rf"TFRecord file {path} record 2: the image cannot be decoded: Invalid PNG data",
    ):
        SegmentationTask(config).prepare(get_backend("default"))


def write_tfrecords_with_a_cut_image(directory) -> tuple[str, str]:
    """12 images over 3 TFRecord files; record 1 of the second file holds a JPEG cut
    short. Returns (the files' glob, that record's name)."""
    ifx.write_image_tfrecords(directory, [i % 4 for i in range(12)], num_files=3)
    damaged = directory / "images-1.tfrecord"
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(damaged))]
    example = tf.train.Example.FromString(records[1])
    encoded = example.features.feature["image/encoded"].bytes_list.value
    assert encoded[0][:2] == b"\xff\xd8"  # a JPEG, whose header survives the cut
    encoded[0] = encoded[0][: len(encoded[0]) // 2]
    records[1] = example.SerializeToString()
    with tf.io.TFRecordWriter(str(damaged)) as writer:
        for record in records:
            writer.write(record)
    return str(directory / "*.tfrecord"), f"TFRecord file {damaged} record 1"


@pytest.mark.parametrize("num_pipelines", [1, 2, 3])
def test_a_tfrecord_image_that_cannot_be_decoded_is_named_by_the_pipeline_reading_it(
    tmp_path, num_pipelines
):
    path, name = write_tfrecords_with_a_cut_image(tmp_path)
    config = _image_config(path)
    config.data.source = "image_tfrecord"
    refusals = []
    for pipeline_id in range(num_pipelines):
        source = data.get_source(config.data, label_mode="sparse", num_classes=4)
        try:
            assert source.check_files(InputInfo(pipeline_id, num_pipelines, 1)) is None
        except DataError as error:
            refusals.append(str(error))
    assert len(refusals) == 1, refusals
    assert refusals[0].startswith(f"{name}: the image cannot be decoded: ")
    assert "Invalid JPEG data" in refusals[0], refusals[0]


def test_a_tfrecord_image_that_cannot_be_decoded_stops_the_task_before_training(tmp_path):
    path, name = write_tfrecords_with_a_cut_image(tmp_path)
    config = _image_config(path)
    config.data.source = "image_tfrecord"
    with pytest.raises(DataError, match=rf"^{name}: the image cannot be decoded"):
        ClassificationTask(config).prepare(get_backend("default"))
