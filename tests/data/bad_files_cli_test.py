"""Images that cannot be decoded, as a user meets them through `python -m focal_dist.train`:
a PNG cut short, a text file named `.png` and an empty `.jpg` among good images, in an
`image_folder` and in a `segmentation_folder`. By default the run stops before anything
is written, with one line naming each file and the decoder's reason; with
`data.bad_files=skip` it trains on the rest and reports the three once, also when two
Horovod workers each found some of them. A TFRecord's image that cannot be decoded is
named by its file and record."""

import numpy as np
import pytest
import tensorflow as tf

from tests.data import image_fixtures as ifx
from tests.data import segmentation_fixtures as sfx
from tests.training import runs

pytestmark = pytest.mark.slow

IMAGES = ifx.TINY_IMAGES
SEGMENTATION = {
    "task.num_classes": sfx.CLASSES,
    "task.eval_images": 0,
    "data.source": "segmentation_folder",
    "data.image_size": 16,
    "data.channels": 3,
    "model.widths": "(4,8)",
    "train.steps": 4,
    "train.steps_per_loop": 2,
    "train.global_batch_size": 4,
    "train.eval_every": 0,
}
REASONS = ("Invalid PNG data, size", "not a JPEG, PNG, GIF or BMP image", "the file is empty")


def _damage(good_png: bytes, cut, text, empty) -> list[str]:
    cut.write_bytes(good_png[: len(good_png) // 2])
    text.write_text("a note, not an image\n")
    empty.write_bytes(b"")
    return [str(cut), str(text), str(empty)]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = ifx.write_image_folder(tmp_path_factory.mktemp("cli_images") / "train")
    png = (folder / "benign" / "000.png").read_bytes()
    cut, text, empty = (
        folder / "benign/zz_cut.png",
        folder / "cyst/zz_text.png",
        folder / "normal/zz_empty.jpg",
    )
    bad = _damage(png, cut, text, empty)
    return folder, bad


@pytest.fixture(scope="module")
def segmentation_folder(tmp_path_factory):
    folder = sfx.write_folder(tmp_path_factory.mktemp("cli_pairs") / "train", 8)
    images, masks = folder / "images", folder / "masks"
    mask = tf.io.encode_png(np.zeros((8, 8, 1), np.uint8))
    for stem in ("case_cut", "case_text", "case_empty"):  # each with a good mask
        tf.io.write_file(str(masks / f"{stem}.png"), mask)
    png = (images / "case_000.png").read_bytes()
    bad = _damage(png, images / "case_cut.png", images / "case_text.png", images / "case_empty.jpg")
    return folder, bad


def _train(distribution, workdir, overrides, config):
    return runs.run(runs.train_command(distribution, workdir, overrides, config), check=False)


def _refused_before_anything_is_written(result, workdir, bad):
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if "cannot be decoded" in line]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "3 image file(s) cannot be decoded: " in lines[0]
    for file, reason in zip(bad, REASONS, strict=True):
        assert f"{file}: {reason}" in lines[0]
    assert "--config.data.bad_files=skip" in lines[0]
    # The work dir was made (and proved writable) before the pass; nothing is in it.
    assert list(workdir.rglob("*")) == []


def _skipped_and_reported(workdir, bad):
    skipped = runs.summary(workdir)["data"]["skipped_files"]
    assert skipped["files"] == 3
    assert sorted(skipped["first"]) == sorted(bad)
    for file, reason in zip(bad, REASONS, strict=True):
        assert skipped["first"][file].startswith(reason)
    from tensorboard.backend.event_processing import event_accumulator

    events = event_accumulator.EventAccumulator(
        str(workdir / "tensorboard"), size_guidance={"tensors": 0}
    )
    events.Reload()
    table = events.Tensors("data/skipped_files")[-1].tensor_proto.string_val[0].decode()
    assert "(3 in all)" in table
    assert all(file in table for file in bad)


def test_an_image_folder_with_undecodable_files_stops_naming_each_before_writing(
    image_folder, tmp_path
):
    folder, bad = image_folder
    workdir = tmp_path / "run"
    result = _train("default", workdir, {**IMAGES, "data.path": folder}, "configs/images.py")
    _refused_before_anything_is_written(result, workdir, bad)


def test_two_horovod_workers_skip_them_and_report_three_once(image_folder, tmp_path):
    # The bad files are images 7, 13 and 18 of the listing: worker 1 decodes the first
    # two, worker 0 the third. A worker that counted every file would make it 6.
    folder, bad = image_folder
    overrides = {**IMAGES, "data.path": folder, "data.bad_files": "skip"}
    result = _train("horovod", tmp_path / "run", overrides, "configs/images.py")
    assert result.returncode == 0, result.stderr[-5000:]
    summary = runs.summary(tmp_path / "run")
    assert summary["num_replicas"] == 2
    # Every good image once, in training's class weights and in the final evaluation.
    assert summary["eval"]["num_examples"] == sum(ifx.CLASS_COUNTS)
    assert "label histogram [7, 5, 3, 1]" in result.stdout + result.stderr
    _skipped_and_reported(tmp_path / "run", bad)


def test_a_segmentation_folder_with_undecodable_images_stops_naming_each_before_writing(
    segmentation_folder, tmp_path
):
    folder, bad = segmentation_folder
    workdir = tmp_path / "run"
    overrides = {**SEGMENTATION, "data.path": folder}
    result = _train("default", workdir, overrides, "focal_dist/configs/segmentation.py")
    _refused_before_anything_is_written(result, workdir, bad)


def test_a_segmentation_folder_skips_them_and_trains_on_the_rest(segmentation_folder, tmp_path):
    folder, bad = segmentation_folder
    overrides = {**SEGMENTATION, "data.path": folder, "data.bad_files": "skip"}
    result = _train("default", tmp_path / "run", overrides, "focal_dist/configs/segmentation.py")
    assert result.returncode == 0, result.stderr[-5000:]
    summary = runs.summary(tmp_path / "run")
    assert summary["step"] == SEGMENTATION["train.steps"]
    assert summary["eval"]["num_examples"] == 8
    _skipped_and_reported(tmp_path / "run", bad)


def test_an_image_tfrecord_with_an_undecodable_image_stops_naming_its_record(tmp_path):
    from tests.data.bad_files_test import write_tfrecords_with_a_cut_image

    path, name = write_tfrecords_with_a_cut_image(tmp_path / "records")
    workdir = tmp_path / "run"
    overrides = {**IMAGES, "data.source": "image_tfrecord", "data.path": path}
    result = _train("default", workdir, overrides, "configs/images.py")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if "cannot be decoded" in line]
    assert len(lines) == 1, result.stderr[-3000:]
    assert f"{name}: the image cannot be decoded: " in lines[0]
    assert list(workdir.rglob("*")) == []
