"""What batch prediction reads when some inputs are bad or already scored: an image that
cannot be decoded (truncated, text named .png, 0 bytes) stays in its place with the
decoder's reason and zero features while every other image is decoded as evaluation
decodes it; the rows an earlier attempt scored are left out on every pipeline, each
other row read once over all pipelines."""

import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from focal_dist import data
from focal_dist.configs import segmentation
from focal_dist.data.scored_rows import ScoredRows
from focal_dist.distribute import InputInfo
from tests.data import image_fixtures as fx
from tests.data import segmentation_fixtures as seg
from tests.data.sources_registry_test import config_data

SIZE = 8
BAD = {
    "truncated.png": r"^Invalid PNG data, size \d+$",
    "text.png": r"^not a JPEG, PNG, GIF or BMP image$",
    "empty.jpg": r"^not a JPEG, PNG, GIF or BMP image$",
}


def _bad_bytes(name: str, good_png: bytes) -> bytes:
    return {"truncated.png": good_png[: len(good_png) // 2], "text.png": b"id,score\n1,0.5\n"}.get(
        name, b""
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """new/: 12 good images (PNG and JPEG) with the three bad ones sorted among them."""
    root = tmp_path_factory.mktemp("inputs") / "new"
    root.mkdir()
    good = {}
    for i, image in enumerate(fx.images(12, seed=3)):
        fmt = ("png", "jpeg")[i % 2]
        path = root / f"{i:02d}.{'png' if fmt == 'png' else 'jpg'}"
        path.write_bytes(fx.encode(image, fmt))
        good[str(path)] = path.read_bytes()
    png = next(b for p, b in good.items() if p.endswith(".png"))
    for index, name in zip((0, 5, 11), BAD, strict=True):
        (root / f"{index:02d}_{name}").write_bytes(_bad_bytes(name, png))
    return root, good


def _rows(source, path, pipelines, scored=None, batch_size=3):
    """{(file, row): batch values of that row} over all pipelines; a row seen twice fails."""
    seen = {}
    for p in range(pipelines):
        info = InputInfo(p, pipelines, batch_size)
        for batch in source.prediction_batches(str(path), info, batch_size, scored):
            batch = {name: value.numpy() for name, value in batch.items()}
            for i, (file, row) in enumerate(zip(batch["file"], batch["row"], strict=True)):
                key = (file.decode(), int(row))
                assert key not in seen, f"{key} twice over {pipelines} pipelines"
                seen[key] = {name: value[i] for name, value in batch.items()}
    return seen


def _evaluated(encoded: bytes) -> np.ndarray:
    """Image classification's eval features from TensorFlow's primitives."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    resized = tf.image.resize(image, (SIZE, SIZE), antialias=True).numpy() / 255.0
    return np.clip(resized, 0.0, 1.0)


@pytest.mark.parametrize(("layout", "pipelines"), [("folder", 1), ("folder", 3), ("glob", 2)])
def test_an_undecodable_image_keeps_its_place_with_the_decoders_reason(folder, pipelines, layout):
    root, good = folder
    path = root if layout == "folder" else root / "*"  # a glob lists the 0-byte file too
    source = data.get_source(
        config_data(source="image_folder", path=str(root), image_size=SIZE),
        label_mode="sparse",
        num_classes=4,
    )
    assert source.prediction_files(str(path)) == sorted(str(p) for p in root.iterdir())
    seen = _rows(source, path, pipelines)
    assert sorted(seen) == sorted((str(p), 0) for p in root.iterdir())
    for (file, _), row in seen.items():
        name = Path(file).name[3:]
        if name in BAD:
            assert re.match(BAD[name], row["error"].decode()), row["error"]
            assert not row["features"].any()
        else:
            assert row["error"] == b""
            np.testing.assert_allclose(row["features"], _evaluated(good[file]), atol=1e-5)


def test_a_segmentation_image_that_cannot_be_decoded_has_no_size_and_a_reason(tmp_path):
    root = tmp_path / "new"
    root.mkdir()
    for i, (stem, image, _) in enumerate(seg.pairs(4, seed=2)):
        tf.io.write_file(str(root / f"{stem}.png"), tf.io.encode_png(image))
        if i == 1:
            (root / f"{stem}_cut.png").write_bytes((root / f"{stem}.png").read_bytes()[:90])
    config = segmentation.get_config()
    config.task.num_classes = seg.CLASSES
    config.data.source, config.data.path = "segmentation_folder", str(root)
    config.data.image_size, config.data.channels = SIZE, 3
    source = data.get_source(config.data, label_mode="sparse", num_classes=seg.CLASSES)
    seen = _rows(source, root, 2)
    assert len(seen) == 5
    for (file, _), row in seen.items():
        if file.endswith("_cut.png"):
            assert row["error"].startswith(b"Invalid PNG data")
            assert tuple(row["size"]) == (0, 0)
        else:
            assert row["error"] == b""
            assert tuple(row["size"]) == tuple(tf.io.decode_png(Path(file).read_bytes()).shape[:2])


def _csv_files(directory: Path) -> str:
    directory.mkdir()
    for name, rows in (("a", 7), ("b", 2), ("c", 5)):
        values = np.arange(rows * 3).reshape(rows, 3) + ord(name)
        lines = ["f0,f1,f2", *(",".join(map(str, v)) for v in values)]
        (directory / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return str(directory / "*.csv")


@pytest.mark.parametrize("kind", ["image_folder", "image_tfrecord", "csv"])
def test_rows_scored_before_are_left_out_and_the_rest_read_once_on_any_pipeline_count(
    folder, tmp_path, kind
):
    if kind == "image_folder":
        path, num_classes = str(folder[0]), 4
    elif kind == "image_tfrecord":
        path, num_classes = fx.write_image_tfrecords(tmp_path / "records", list(range(9))), 9
    else:
        path, num_classes = _csv_files(tmp_path / "tables"), 1
    config = config_data(source=kind, path=path, image_size=SIZE, num_features=0)
    source = data.get_source(config, label_mode="sparse", num_classes=num_classes)
    every = sorted(_rows(source, path, 1))
    # Every third row scored, as an earlier attempt with another worker count leaves them.
    scored = ScoredRows(every[::3])
    assert len(scored) == len(every[::3])
    assert every[0] in scored
    assert every[1] not in scored
    assert sorted(_rows(source, path, 3, scored)) == sorted(set(every) - set(every[::3]))
    assert _rows(source, path, 2, ScoredRows(every)) == {}
