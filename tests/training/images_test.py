"""Training on real PNG and JPEG files, in folders and in TFRecords, on three backends."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.data import image_fixtures as fx
from tests.training import runs

pytestmark = pytest.mark.slow

# 16 images and a global batch of 8: every replica batch is full, in training and in
# the final evaluation. With oneDNN on CPU, Conv2D on an empty [0, H, W, C] batch
# returns a wrong shape (docs: "Facts found while testing"); short and empty replica
# batches are tested separately.
NUM_IMAGES = sum(fx.CLASS_COUNTS)
TINY = fx.TINY_IMAGES


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return fx.write_image_folder(tmp_path_factory.mktemp("images") / "train")


@pytest.fixture(scope="module")
def binary_records(tmp_path_factory):
    labels = np.random.default_rng(0).permutation([1] * 3 + [0] * (NUM_IMAGES - 3))
    return fx.write_image_tfrecords(tmp_path_factory.mktemp("records"), labels.tolist())


def _train(tmp_path, distribution, overrides):
    command = runs.train_command(
        distribution, tmp_path / "run", {**TINY, **overrides}, config="configs/images.py"
    )
    return runs.run(command), runs.summary(tmp_path / "run")


def test_images_config_by_name_trains_a_cnn_on_a_folder_from_outside_the_checkout(tmp_path, folder):
    flags = [f"--config.{key}={value}" for key, value in TINY.items()]
    # No checkout on PYTHONPATH and another working directory: the shipped config.
    result = subprocess.run(
        [
            *(sys.executable, "-m", "focal_dist.train", "--config=images", "--workdir=run"),
            *flags,
            f"--config.data.path={folder}",
        ],
        cwd=tmp_path,
        env={**runs.env(), "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert "classes 0=benign (7), 1=cyst (5), 2=malignant (3), 3=normal (1)" in result.stderr
    summary = runs.summary(tmp_path / "run")
    assert summary["config"]["model"]["name"] == "cnn"
    assert summary["eval"]["num_examples"] == NUM_IMAGES
    assert "pr_auc/class_3" in summary["eval"]
    assert all(np.isfinite(summary["train_losses"]))


def test_binary_tfrecord_images_train_under_mirrored(tmp_path, binary_records):
    _, summary = _train(
        tmp_path,
        "mirrored",
        {"task.name": "binary", "data.source": "image_tfrecord", "data.path": binary_records},
    )
    assert summary["num_replicas"] == 4
    assert summary["eval"]["num_examples"] == NUM_IMAGES
    assert summary["eval"]["positive_rate"] == pytest.approx(3 / NUM_IMAGES)


def test_image_folder_trains_under_horovod(tmp_path, folder):
    _, summary = _train(tmp_path, "horovod", {"data.path": folder})
    assert summary["num_replicas"] == 2
    assert summary["eval"]["num_examples"] == NUM_IMAGES
    assert all(np.isfinite(summary["train_losses"]))


def test_multi_label_tfrecord_images_train_with_lists_of_labels(tmp_path):
    labels = [[0, 2], [], [1], [3, 1], [2], [0], [], [1, 2, 3]] * 2
    path = fx.write_image_tfrecords(tmp_path / "records", labels)
    _, summary = _train(
        tmp_path,
        "default",
        {"task.name": "multi_label", "data.source": "image_tfrecord", "data.path": path},
    )
    assert summary["eval"]["num_examples"] == NUM_IMAGES
    assert "pr_auc/class_3" in summary["eval"]


def test_a_binary_folder_of_two_classes_exports_both_names_and_scores_a_flat_folder(tmp_path):
    # A screening user's layout: negatives/ and positives/ for training, then new images
    # in one flat folder for batch prediction.
    train = fx.write_image_folder(tmp_path / "train", counts=(6, 4), names=("benign", "lesion"))
    _, summary = _train(
        tmp_path,
        "default",
        {"task.name": "binary", "task.num_classes": 1, "data.path": str(train)},
    )
    deploy = json.loads((tmp_path / "run" / "export" / "deploy.json").read_text())
    assert deploy["class_names"] == ["benign", "lesion"]
    assert deploy["num_outputs"] == 1
    flat = tmp_path / "new"
    flat.mkdir()
    sources = sorted((train / "lesion").iterdir()) + sorted((train / "benign").iterdir())[:3]
    for i, path in enumerate(sources):
        (flat / f"{i}{path.suffix}").write_bytes(path.read_bytes())
    command = [sys.executable, "-m", "focal_dist.predict", f"--workdir={tmp_path / 'run'}"]
    runs.run([*command, f"--data={flat}", f"--output={tmp_path / 'scores'}"])
    rows = [
        line.split(",")
        for part in sorted((tmp_path / "scores").glob("part-*.csv"))
        for line in part.read_text().splitlines()[1:]
    ]
    assert sorted(row[0] for row in rows) == sorted(str(flat / p.name) for p in flat.iterdir())
