"""A segmentation run after training, as users meet it: `--config=segmentation` on a
small PNG folder exports a SavedModel that TensorFlow alone serves (per-pixel softmax
and argmax, from tensors or image bytes), and `python -m focal_dist.predict` writes one
PNG mask per image, exactly once under one process or two Horovod ranks, equal to the
Keras model's argmax resized back to the image's own size."""

import base64
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.data import segmentation_fixtures as fx
from tests.serving import fresh_process
from tests.training import runs

pytestmark = pytest.mark.slow

SIZE = 32
TRAIN = {
    "task.num_classes": fx.CLASSES,
    "task.eval_images": 0,
    "data.source": "segmentation_folder",
    "data.image_size": SIZE,
    "data.channels": 3,
    "model.widths": "(4,8)",
    "train.steps": 16,
    "train.steps_per_loop": 8,
    "train.global_batch_size": 4,
    "train.eval_every": 0,
    "train.checkpoint_every": 16,
}
NUM_IMAGES = 7


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("segserve")
    folder = fx.write_folder(root / "train", 8)
    workdir = root / "run"
    command = runs.train_command(
        "default", workdir, {**TRAIN, "data.path": folder}, config="configs/segmentation.py"
    )
    runs.run(command)
    # Images alone, at two depths, PNG and JPEG, of three sizes none of them the model's.
    new, images = root / "new", {}
    for i, (stem, image, _) in enumerate(fx.pairs(NUM_IMAGES, seed=9)):
        folder = new / ("site_a" if i % 2 else "site_b/day_1")
        folder.mkdir(parents=True, exist_ok=True)
        suffix, encode = ("png", tf.io.encode_png) if i % 3 else ("jpg", tf.io.encode_jpeg)
        path = folder / f"{stem}.{suffix}"
        tf.io.write_file(str(path), encode(image))
        images[str(path.relative_to(new).with_suffix(""))] = path
    records = fx.write_tfrecords(root / "records", NUM_IMAGES, seed=9, files=1)
    return workdir, new, images, records


def _evaluated(encoded: bytes) -> np.ndarray:
    """The eval path's features, from TensorFlow's primitives: bilinear to SIZE, / 255."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    resized = tf.image.resize(image, (SIZE, SIZE), method="bilinear").numpy() / 255.0
    return np.clip(resized, 0.0, 1.0).astype(np.float32)


def _keras_logits(workdir: Path, features: np.ndarray) -> np.ndarray:
    import keras

    model = keras.models.load_model(workdir / "export" / "model.keras", compile=False)
    return model(features, training=False).numpy().astype(np.float64)


def _clear(logits: np.ndarray) -> np.ndarray:
    """Pixels whose two best classes are more than 1e-4 apart (their argmax is robust)."""
    top = np.sort(logits, axis=-1)
    return top[..., -1] - top[..., -2] > 1e-4


def _nearest(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest neighbour with half-pixel centres, in float32 (TF2's resize rule)."""

    def source(out: int, size: int) -> np.ndarray:
        scale = np.float32(size) / np.float32(out)
        centres = (np.arange(out, dtype=np.float32) + np.float32(0.5)) * scale
        return np.minimum(np.floor(centres).astype(np.int64), size - 1)

    return values[source(height, values.shape[0])][:, source(width, values.shape[1])]


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_tensorflow_alone_serves_per_pixel_softmax_and_argmax_from_tensors_and_bytes(
    trained, tmp_path
):
    workdir, _, images, _ = trained
    encoded = [path.read_bytes() for path in images.values()]
    features = np.stack([_evaluated(e) for e in encoded])
    np.save(tmp_path / "features.npy", features)
    directory = str(workdir / "export" / "saved_model")
    jobs = [
        {
            "directory": directory,
            "signature": "serving_default",
            "input": "features",
            "values": str(tmp_path / "features.npy"),
            "output": str(tmp_path / "default.npz"),
        },
        {
            "directory": directory,
            "signature": "image_bytes",
            "input": "image_bytes",
            "b64": [base64.b64encode(e).decode() for e in encoded],
            "output": str(tmp_path / "bytes.npz"),
        },
    ]
    assert fresh_process.serve(tmp_path, jobs) == []
    logits = _keras_logits(workdir, features)
    clear = _clear(logits)
    assert clear.mean() > 0.99
    for name in ("default", "bytes"):
        served = np.load(tmp_path / f"{name}.npz")
        assert served["decisions"].shape == (NUM_IMAGES, SIZE, SIZE)
        assert served["decisions"].dtype == np.int64
        np.testing.assert_allclose(served["logits"], logits, atol=1e-6)
        np.testing.assert_allclose(served["probabilities"], _softmax(logits), atol=1e-6)
        np.testing.assert_array_equal(served["decisions"][clear], logits.argmax(-1)[clear])
    deploy = json.loads((workdir / "export" / "deploy.json").read_text())
    assert deploy["label_mode"] == "per_pixel"
    assert (deploy["num_outputs"], deploy["ignore_label"]) == (fx.CLASSES, fx.IGNORE)
    assert (deploy["image_size"], deploy["channels"]) == ([SIZE, SIZE], 3)
    assert deploy["calibration"]["method"] == "none"
    assert "identity" in deploy["calibration"]["formula"]
    assert sorted(deploy["saved_model"]["signatures"]) == ["image_bytes", "serving_default"]
    shown = fresh_process.saved_model_cli_show(directory)
    for piece in (
        "signature_def['serving_default']",
        "signature_def['image_bytes']",
        f"shape: (-1, {SIZE}, {SIZE}, {fx.CLASSES})",
        f"shape: (-1, {SIZE}, {SIZE})",
        "outputs['decisions']",
    ):
        assert piece in shown, shown[-3000:]


def _predict(distribution, workdir, data, output, source=None):
    args = ["-m", "focal_dist.predict", f"--workdir={workdir}", f"--data={data}"]
    args += [f"--output={output}"] + ([f"--source={source}"] if source else [])
    return runs.run(runs.distributed_command(distribution, args))


@pytest.mark.parametrize(
    ("distribution", "layout"),
    [("default", "folder"), ("horovod", "folder"), ("horovod", "tfrecord")],
)
def test_predict_writes_every_images_mask_once_at_its_own_size(
    distribution, layout, trained, tmp_path
):
    workdir, new, images, records = trained
    output = tmp_path / "masks_run"
    if layout == "folder":
        _predict(distribution, workdir, new, output)
        encoded = {name: path.read_bytes() for name, path in images.items()}
    else:
        _predict(distribution, workdir, records, output, source="segmentation_tfrecord")
        # The pairs as write_tfrecords stored them: record i of its one file.
        encoded = {
            f"records-0.tfrecord/{i}": tf.io.encode_png(image).numpy()
            for i, (_, image, _) in enumerate(fx.pairs(NUM_IMAGES, seed=9))
        }
    rows = []
    for part in sorted(output.glob("part-*.csv")):
        with open(part) as handle:
            rows += list(csv.DictReader(handle))
    names = [row["mask"] for row in rows]
    assert len(names) == len(set(names)) == NUM_IMAGES
    assert sorted(names) == sorted(f"masks/{name}.png" for name in encoded)
    assert sorted(p.relative_to(output).as_posix() for p in output.rglob("*.png")) == sorted(names)
    assert not list(output.rglob("*.partial"))
    names_in_order = list(encoded)
    features = np.stack([_evaluated(encoded[name]) for name in names_in_order])
    logits = _keras_logits(workdir, features)
    for row in rows:
        name = row["mask"][len("masks/") : -len(".png")]
        k = names_in_order.index(name)
        image = tf.io.decode_image(encoded[name], channels=3).numpy()
        mask = tf.io.decode_png((output / row["mask"]).read_bytes()).numpy()
        assert mask.dtype == np.uint8
        assert mask.shape == (*image.shape[:2], 1)
        height, width = image.shape[:2]
        expected = _nearest(logits[k].argmax(-1), height, width)
        clear = _nearest(_clear(logits[k]), height, width)
        np.testing.assert_array_equal(mask[..., 0][clear], expected[clear])
        counts = [int(row[f"pixels_{c}"]) for c in range(fx.CLASSES)]
        assert counts == np.bincount(mask.ravel(), minlength=fx.CLASSES).tolist()
    manifest = json.loads((output / "prediction.json").read_text())
    assert manifest["rows"] == NUM_IMAGES
    assert manifest["label_mode"] == "per_pixel"
    assert len(manifest["parts"]) == {"default": 1, "horovod": 2}[distribution]
