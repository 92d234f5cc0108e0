"""`python -m focal_dist.histogram` over segmentation masks: valid pixels per class, each
once, on one process and on two Horovod ranks, from a folder and from TFRecords."""

import json

import numpy as np
import pytest

from tests.data import segmentation_fixtures as fx
from tests.training import runs

COUNT = 9


@pytest.mark.parametrize(
    ("launcher", "layout"),
    [
        ("default", "segmentation_folder"),
        ("default", "segmentation_tfrecord"),
        pytest.param("horovod", "segmentation_folder", marks=pytest.mark.slow),
    ],
)
def test_the_histogram_cli_counts_every_valid_mask_pixel_once(launcher, layout, tmp_path):
    if layout == "segmentation_folder":
        path = fx.write_folder(tmp_path / "train", COUNT)
    else:
        path = fx.write_tfrecords(tmp_path / "train", COUNT, files=3)
    output = tmp_path / "weights.json"
    cli = [
        "-m",
        "focal_dist.histogram",
        f"--data={path}",
        f"--source={layout}",
        f"--num_classes={fx.CLASSES}",
        "--label_mode=sparse",
        f"--output={output}",
    ]
    runs.run(runs.distributed_command(launcher, cli), timeout=300)
    report = json.loads(output.read_text())
    expected = fx.pixel_counts(COUNT)
    assert report["counts"] == expected.tolist()
    assert report["num_examples"] == int(expected.sum())
    balanced = expected.sum() / (fx.CLASSES * expected.astype(np.float64))
    np.testing.assert_allclose(report["class_weights"]["balanced"], balanced, rtol=1e-12)


def test_masks_are_counted_as_class_ids_only(tmp_path):
    path = fx.write_folder(tmp_path / "train", 3)
    cli = ["-m", "focal_dist.histogram", f"--data={path}", "--source=segmentation_folder"]
    cli += ["--num_classes=3", "--label_mode=binary"]
    result = runs.run(runs.distributed_command("default", cli), check=False)
    assert result.returncode != 0
    assert "--label_mode must be sparse" in result.stderr
