"""Images to predict masks for, as batch prediction reads them: no mask needed, every
image exactly once over 1-3 pipelines, decoded as evaluation decodes them, with its own
size and the name its mask is written under."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import data
from focal_dist.configs import segmentation
from focal_dist.data.files import DataError
from focal_dist.distribute import InputInfo
from tests.data import segmentation_fixtures as fx

SIZE = 16


def _source(source, path):
    config = segmentation.get_config()
    config.task.num_classes = fx.CLASSES
    config.data.source, config.data.path = source, str(path)
    config.data.image_size, config.data.channels = SIZE, 3
    return data.get_source(config.data, label_mode="sparse", num_classes=fx.CLASSES)


def _rows(source, path, pipelines):
    """{name: (file, row, size, features)} over all pipelines; a name seen twice fails."""
    seen = {}
    for p in range(pipelines):
        for batch in source.prediction_batches(str(path), InputInfo(p, pipelines, 2), 2):
            batch = {k: v.numpy() for k, v in batch.items()}
            for i, name in enumerate(batch["name"]):
                assert name.decode() not in seen, f"{name} twice over {pipelines} pipelines"
                seen[name.decode()] = (
                    batch["file"][i].decode(),
                    int(batch["row"][i]),
                    tuple(batch["size"][i]),
                    batch["features"][i],
                )
    return seen


def _evaluated(image: np.ndarray) -> np.ndarray:
    """The eval path's image, written from TensorFlow's primitives: bilinear, / 255."""
    resized = tf.image.resize(image, (SIZE, SIZE), method="bilinear").numpy() / 255.0
    return np.clip(resized, 0.0, 1.0)


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    """new/<site>/<stem>.png|.jpg: images alone, at two depths, PNG and JPEG."""
    root = tmp_path_factory.mktemp("predict") / "new"
    written = {}
    for i, (stem, image, _) in enumerate(fx.pairs(7, seed=5)):
        folder = root / ("site_a" if i % 2 else "site_b/day_1")
        folder.mkdir(parents=True, exist_ok=True)
        encode = tf.io.encode_png if i % 3 else tf.io.encode_jpeg
        path = folder / f"{stem}.{'png' if i % 3 else 'jpg'}"
        tf.io.write_file(str(path), encode(image))
        decoded = tf.io.decode_image(tf.io.read_file(str(path)), channels=3).numpy()
        written[str(path.relative_to(root).with_suffix(""))] = (str(path), decoded)
    return root, written


@pytest.mark.parametrize("pipelines", [1, 2, 3])
def test_every_image_under_a_folder_once_with_its_size_and_relative_name(nested, pipelines):
    root, written = nested
    seen = _rows(_source("segmentation_folder", root), root, pipelines)
    assert sorted(seen) == sorted(written)
    for name, (file, row, size, features) in seen.items():
        path, image = written[name]
        assert (file, row, size) == (path, 0, image.shape[:2])
        np.testing.assert_allclose(features, _evaluated(image), atol=1e-6)


def test_globs_name_images_under_the_files_common_folder(nested):
    root, written = nested
    jpeg = {name for name, (path, _) in written.items() if path.endswith(".jpg")}
    png = {name for name, (path, _) in written.items() if path.endswith(".png")}
    seen = _rows(_source("segmentation_folder", root), f"{root}/site_b/*/*.jpg", 2)
    assert sorted(seen) == sorted(n.split("/")[-1] for n in jpeg if n.startswith("site_b"))
    both = f"{root}/site_a/*.png,{root}/site_b/day_1/*.jpg"
    seen = _rows(_source("segmentation_folder", root), both, 2)
    site_a_png = {n for n in png if n.startswith("site_a")}
    assert sorted(seen) == sorted(site_a_png | {n for n in jpeg if n.startswith("site_b")})


def test_a_training_folder_gives_its_images_alone_named_by_stem(tmp_path):
    folder = fx.write_folder(tmp_path / "train", 5)
    seen = _rows(_source("segmentation_folder", folder), folder, 2)
    assert sorted(seen) == [f"case_{i:03d}" for i in range(5)]
    assert {Path(file).parent.name for file, *_ in seen.values()} == {"images"}


def test_two_images_that_would_write_one_mask_are_refused_naming_both(tmp_path):
    (_, image, _), *_ = fx.pairs(1)
    for suffix, encode in (("png", tf.io.encode_png), ("jpg", tf.io.encode_jpeg)):
        tf.io.write_file(str(tmp_path / f"scan.{suffix}"), encode(image))
    source = _source("segmentation_folder", tmp_path)
    with pytest.raises(DataError, match=r"scan.jpg.*scan.png.*both write the mask scan.png"):
        source.prediction_batches(str(tmp_path), InputInfo(0, 1, 2), 2)


@pytest.mark.parametrize("pipelines", [1, 2, 3])
def test_every_record_of_tfrecords_once_named_by_file_and_index(tmp_path, pipelines):
    pattern = fx.write_tfrecords(tmp_path / "new", 7, seed=2, files=2)
    seen = _rows(_source("segmentation_tfrecord", pattern), pattern, pipelines)
    # write_tfrecords puts pair i into file i % 2, as record i // 2.
    expected = {
        f"new-{i % 2}.tfrecord/{i // 2}": image for i, (_, image, _) in enumerate(fx.pairs(7, 2))
    }
    assert sorted(seen) == sorted(expected)
    for name, (file, row, size, features) in seen.items():
        assert f"{Path(file).name}/{row}" == name
        assert size == expected[name].shape[:2]
        np.testing.assert_allclose(features, _evaluated(expected[name]), atol=1e-6)
